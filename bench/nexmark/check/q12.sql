-- Query 12: processing-time windows cannot be recomputed. What must hold once every window has
-- fired: per bidder, the bid counts of its windows add up to its bids. run.py compares these
-- totals (sum of bid_count by bidder over the sink's rows).
SELECT bidder, count(*) AS bid_count FROM bid GROUP BY bidder;
