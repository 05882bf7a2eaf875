-- SQLite stores platform as text: 'twitter' and 'linkedin' need no schema change here.
SELECT 1;
