DROP TABLE movie_countries; DROP TABLE movie_genres;
