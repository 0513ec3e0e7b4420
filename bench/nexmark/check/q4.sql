-- Query 4: per category, the average of the auctions' winning prices (final state, keyed by
-- category). Flink's AVG of a BIGINT is a BIGINT, the quotient truncated.
SELECT category AS id, CAST(sum(final) // count(final) AS BIGINT) AS final
FROM (
    SELECT max(B.price) AS final, A.category
    FROM auction A JOIN bid B
      ON A.id = B.auction AND B."dateTime" BETWEEN A."dateTime" AND A.expires
    GROUP BY A.id, A.category
)
GROUP BY category;
