-- Query 9: each auction with its winning bid, the highest within [dateTime, expires], the
-- earliest of equal prices, the first arrived of equal times (final state keyed by id).
SELECT A.id, A.itemName, A.description, A.initialBid, A.reserve, A."dateTime", A.expires,
       A.seller, A.category, A.extra,
       B.auction, B.bidder, B.price, B."dateTime" AS bid_dateTime, B.extra AS bid_extra
FROM auction A JOIN bid B
  ON A.id = B.auction AND B."dateTime" BETWEEN A."dateTime" AND A.expires
QUALIFY row_number() OVER (PARTITION BY A.id ORDER BY B.price DESC, B."dateTime", B._seq) = 1;
