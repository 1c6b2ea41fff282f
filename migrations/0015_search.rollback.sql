DROP TABLE search_terms;
DROP TABLE search_documents;
DROP FUNCTION search_query(text);
DROP FUNCTION search_query_words(text);
DROP FUNCTION search_lexeme(text);
DROP FUNCTION search_typo_keys(text);
DROP FUNCTION search_words(text);
DROP TABLE search_positions;
