-- Query 19: the 10 highest bids of each auction with their rank, the first arrived of equal prices
-- ranked first (final state keyed by auction and rank).
SELECT auction, bidder, price, channel, url, "dateTime", extra, rank_number
FROM (
    SELECT *, row_number() OVER (PARTITION BY auction ORDER BY price DESC, _seq) AS rank_number
    FROM bid
)
WHERE rank_number <= 10;
