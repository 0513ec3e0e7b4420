-- Query 14: bids priced between 1 M and 50 M euros, with the time of day and the number of 'c's
-- in extra (the count_char UDF).
SELECT auction, bidder, CAST(0.908 * price AS DECIMAL(23, 3)) AS price,
       CASE
           WHEN hour("dateTime") >= 8 AND hour("dateTime") <= 18 THEN 'dayTime'
           WHEN hour("dateTime") <= 6 OR hour("dateTime") >= 20 THEN 'nightTime'
           ELSE 'otherTime'
       END AS bidTimeType,
       "dateTime", extra,
       CAST(length(regexp_replace(extra, '[^c]', '', 'g')) AS BIGINT) AS c_counts
FROM bid
WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000;
