-- Query 1: currency conversion, DECIMAL(23, 3) as Flink types 0.908 * BIGINT.
SELECT auction, bidder, CAST(0.908 * price AS DECIMAL(23, 3)) AS price, "dateTime", extra FROM bid;
