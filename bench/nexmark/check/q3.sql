-- Query 3: sellers in OR, ID or CA with auctions in category 10 (a regular inner join: every
-- matching pair, whichever side arrived first).
SELECT P.name, P.city, P.state, A.id
FROM auction A JOIN person P ON A.seller = P.id
WHERE A.category = 10 AND P.state IN ('OR', 'ID', 'CA');
