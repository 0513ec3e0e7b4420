-- Query 5: per closed 10 s window sliding by 2 s, the auctions with the most bids.
WITH windows AS (
    -- HOP(2 s, 10 s): the 5 windows starting at the row's 2 s bucket and the 4 before it.
    SELECT auction, epoch_ms((epoch_ms("dateTime") // 2000) * 2000 - 2000 * k) AS starttime
    FROM bid, range(5) AS r(k)
),
counts AS (
    SELECT auction, count(*) AS num, starttime, starttime + INTERVAL 10 SECOND AS endtime
    FROM windows
    GROUP BY auction, starttime
    HAVING starttime + INTERVAL 10 SECOND - INTERVAL 1 MILLISECOND <= (SELECT watermark FROM wm)
),
maxima AS (
    SELECT max(num) AS maxn, starttime, endtime FROM counts GROUP BY starttime, endtime
)
SELECT C.auction, C.num
FROM counts C JOIN maxima M
  ON C.starttime = M.starttime AND C.endtime = M.endtime AND C.num >= M.maxn;
