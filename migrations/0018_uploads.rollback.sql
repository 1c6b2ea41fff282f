DROP TABLE uploads;
ALTER TABLE shots DROP COLUMN image_key, DROP COLUMN images;
ALTER TABLE persons DROP COLUMN photo_key, DROP COLUMN photo_images;
ALTER TABLE movies DROP COLUMN poster_key, DROP COLUMN poster_images;
