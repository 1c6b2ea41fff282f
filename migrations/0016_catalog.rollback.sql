DROP TABLE catalog;
