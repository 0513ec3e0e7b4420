-- Query 7: the bids at the highest price of each closed 10 s tumbling window, joined back on
-- price and time (a regular join). As in the Flink query, price lands in the sink's bidder
-- column and bidder in its price column.
WITH B1 AS (
    SELECT max(price) AS maxprice, window_end AS "dateTime"
    FROM (SELECT price, epoch_ms((epoch_ms("dateTime") // 10000) * 10000 + 10000) AS window_end FROM bid)
    GROUP BY window_end
    HAVING window_end - INTERVAL 1 MILLISECOND <= (SELECT watermark FROM wm)
)
SELECT B.auction, B.price AS bidder, B.bidder AS price, B."dateTime", B.extra
FROM bid B JOIN B1 ON B.price = B1.maxprice
WHERE B."dateTime" BETWEEN B1."dateTime" - INTERVAL 10 SECOND AND B1."dateTime";
