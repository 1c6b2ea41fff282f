DROP TABLE shots;
