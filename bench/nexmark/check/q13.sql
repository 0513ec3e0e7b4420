-- Query 13: each bid enriched with the side input row of key auction % 10000. (A bid the job
-- processed before it read its side input row has none: run.py only requires the sink's rows
-- to be among these.)
SELECT B.auction, B.bidder, B.price, B."dateTime", S."value"
FROM bid B JOIN side_input S ON B.auction % 10000 = S.key;
