-- Query 22: the first three directories of each bid's URL (SPLIT_INDEX counts from 0, split_part
-- from 1).
SELECT auction, bidder, price, channel,
       split_part(url, '/', 4) AS dir1,
       split_part(url, '/', 5) AS dir2,
       split_part(url, '/', 6) AS dir3
FROM bid;
