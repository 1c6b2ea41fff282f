DROP TABLE genres;
