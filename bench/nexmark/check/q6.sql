-- Query 6 (Flink cannot run it either: OVER over a retracting input): per seller, the average
-- of the winning prices of its last 11 auctions (ROWS BETWEEN 10 PRECEDING AND CURRENT ROW,
-- ordered by the winning bid's time), as the final state keyed by seller. The winning bid of an
-- auction is its highest bid within [dateTime, expires] (the first arrived among equal prices).
WITH winners AS (
    SELECT A.id, A.seller, B.price, B."dateTime", B._seq
    FROM auction A JOIN bid B
      ON A.id = B.auction AND B."dateTime" BETWEEN A."dateTime" AND A.expires
    QUALIFY row_number() OVER (PARTITION BY A.id, A.seller ORDER BY B.price DESC, B._seq) = 1
),
ranked AS (
    SELECT seller, price,
           row_number() OVER (PARTITION BY seller ORDER BY "dateTime" DESC, _seq DESC) AS age
    FROM winners
)
SELECT CAST(seller AS VARCHAR) AS seller, CAST(sum(price) // count(price) AS BIGINT) AS avg_price
FROM ranked
WHERE age <= 11
GROUP BY seller;
