-- Query 13: each bid enriched with the side input row of key auction % 10000.
SELECT B.auction, B.bidder, B.price, B."dateTime", S."value"
FROM bid B JOIN side_input S ON B.auction % 10000 = S.key;
