-- Query 18: the last bid of each bidder on each auction, the last arrived of equal times (final
-- state keyed by bidder and auction).
SELECT auction, bidder, price, channel, url, "dateTime", extra
FROM bid
QUALIFY row_number() OVER (PARTITION BY bidder, auction ORDER BY "dateTime" DESC, _seq DESC) = 1;
