-- Query 8: people who created an auction in the closed 10 s tumbling window they joined in.
WITH P AS (
    SELECT DISTINCT id, name, epoch_ms((epoch_ms("dateTime") // 10000) * 10000) AS starttime
    FROM person
),
A AS (
    SELECT DISTINCT seller, epoch_ms((epoch_ms("dateTime") // 10000) * 10000) AS starttime
    FROM auction
)
SELECT P.id, P.name, P.starttime AS stime
FROM P JOIN A ON P.id = A.seller AND P.starttime = A.starttime
WHERE P.starttime + INTERVAL 10 SECOND - INTERVAL 1 MILLISECOND <= (SELECT watermark FROM wm);
