-- Query 11: bids per closed session (gap 10 s) of each bidder. A session is [first, last + 10 s);
-- bids less than 10 s apart are in the same session; it has fired when end - 1 ms <= watermark.
WITH marked AS (
    SELECT bidder, "dateTime",
           CASE WHEN "dateTime" - lag("dateTime") OVER (PARTITION BY bidder ORDER BY "dateTime")
                     < INTERVAL 10 SECOND
                THEN 0 ELSE 1 END AS starts
    FROM bid
),
sessions AS (
    SELECT bidder, "dateTime",
           sum(starts) OVER (PARTITION BY bidder ORDER BY "dateTime" ROWS UNBOUNDED PRECEDING) AS session
    FROM marked
)
SELECT bidder, count(*) AS bid_count, min("dateTime") AS starttime,
       max("dateTime") + INTERVAL 10 SECOND AS endtime
FROM sessions
GROUP BY bidder, session
HAVING max("dateTime") + INTERVAL 10 SECOND - INTERVAL 1 MILLISECOND <= (SELECT watermark FROM wm);
