-- depends: 0010_external_ids

-- Search, maintained by the indexer (cinema/actors/indexer.py) from the outbox log. The
-- PostgreSQL search backend keeps its documents here; with Elasticsearch configured only
-- `search_positions` is used.
--
-- Only core PostgreSQL is used: the embedded server (pgserver's build) has neither
-- pg_trgm nor unaccent, and the embedded server is the default. Accents are folded by
-- `search_fold` (translate(), immutable, so indexes may use it), prefixes are tsquery
-- prefix matches on a GIN index, and typos go through `search_terms`, a lexicon keyed by
-- each word's one-deletion variants (two words one typo apart share a key).

-- How far each consumer of the outbox has got: the seq of the last event it finished.
CREATE TABLE search_positions (
    consumer   text NOT NULL,
    seq        bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT search_positions_pkey PRIMARY KEY (consumer)
);

-- Lower case without diacritics: Latin-1, Latin Extended-A/B and Latin Extended Additional
-- (Vietnamese) letters map to their base letter, ligatures to two letters.
CREATE FUNCTION search_fold(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT lower(translate(
    replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(value,
        'ß', 'ss'), 'ẞ', 'SS'), 'Æ', 'AE'), 'æ', 'ae'), 'Œ', 'OE'), 'œ', 'oe'),
        'Þ', 'TH'), 'þ', 'th'), 'Ĳ', 'IJ'), 'ĳ', 'ij'), 'ŉ', 'n'),
        'ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝàáâãäåçèéêëìíîïðñòóôõöøùúûüý'
        'ÿĀāĂăĄąĆćĈĉĊċČčĎďĐđĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĦħĨĩĪīĬĭĮįİıĴĵĶķĸ'
        'ĹĺĻļĽľĿŀŁłŃńŅņŇňŊŋŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŦŧŨũŪūŬŭŮůŰűŲų'
        'ŴŵŶŷŸŹźŻżŽžſƀƁƇƈƊƑƒƓƗƘƙƚƝƞƠơƤƥƫƬƭƮƯưƲƳƴƵƶǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛ'
        'ǜǞǟǠǡǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȡȤȥȦȧȨ'
        'ȩȪȫȬȭȮȯȰȱȲȳȴȵȶȷȺȻȼȽȾȿɀɃɄɆɇɈɉɊɋɌɍɎɏḀḁḂḃḄḅḆḇḈḉḊḋḌḍḎḏḐḑḒḓḔḕ'
        'ḖḗḘḙḚḛḜḝḞḟḠḡḢḣḤḥḦḧḨḩḪḫḬḭḮḯḰḱḲḳḴḵḶḷḸḹḺḻḼḽḾḿṀṁṂṃṄṅṆṇṈṉṊṋṌṍ'
        'ṎṏṐṑṒṓṔṕṖṗṘṙṚṛṜṝṞṟṠṡṢṣṤṥṦṧṨṩṪṫṬṭṮṯṰṱṲṳṴṵṶṷṸṹṺṻṼṽṾṿẀẁẂẃẄẅ'
        'ẆẇẈẉẊẋẌẍẎẏẐẑẒẓẔẕẖẗẘẙẛẠạẢảẤấẦầẨẩẪẫẬậẮắẰằẲẳẴẵẶặẸẹẺẻẼẽẾếỀềỂ'
        'ểỄễỆệỈỉỊịỌọỎỏỐốỒồỔổỖỗỘộỚớỜờỞởỠỡỢợỤụỦủỨứỪừỬửỮữỰựỲỳỴỵỶỷỸỹ',
        'AAAAAACEEEEIIIIDNOOOOOOUUUUYaaaaaaceeeeiiiidnoooooouuuuy'
        'yAaAaAaCcCcCcCcDdDdEeEeEeEeEeGgGgGgGgHhHhIiIiIiIiIiJjKkk'
        'LlLlLlLlLlNnNnNnNnOoOoOoRrRrRrSsSsSsSsTtTtTtUuUuUuUuUuUu'
        'WwYyYZzZzZzsbBCcDFfGIKklNnOoPptTtTUuVYyZzAaIiOoUuUuUuUuU'
        'uAaAaGgKkOoOojGgNnAaAaAaEeEeIiIiOoOoRrRrUuUuSsTtHhdZzAaE'
        'eOoOoOoOoYylntjACcLTszBUEeJjQqRrYyAaBbBbBbCcDdDdDdDdDdEe'
        'EeEeEeEeFfGgHhHhHhHhHhIiIiKkKkKkLlLlLlLlMmMmMmNnNnNnNnOo'
        'OoOoOoPpPpRrRrRrRrSsSsSsSsSsTtTtTtTtUuUuUuUuUuVvVvWwWwWw'
        'WwWwXxXxYyZzZzZzhtwysAaAaAaAaAaAaAaAaAaAaAaAaEeEeEeEeEeE'
        'eEeEeIiIiOoOoOoOoOoOoOoOoOoOoOoOoUuUuUuUuUuUuUuYyYyYyYy'
))
$$;

-- The words of a text as the index holds them: folded, split by the 'simple' parser
-- (no stemming and no stop words, so every word of a title can be typed as a prefix).
CREATE FUNCTION search_words(value text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT tsvector_to_array(to_tsvector('simple', search_fold(value)))
$$;

-- A word and every variant of it with one letter deleted. Two words within one typo
-- (a letter changed, added, removed or two swapped) have a variant in common.
CREATE FUNCTION search_typo_keys(word text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT array_agg(DISTINCT k) FROM (
    SELECT word
    UNION ALL
    SELECT overlay(word PLACING '' FROM i FOR 1) FROM generate_series(1, length(word)) AS i
) AS v(k)
$$;

-- A word quoted as a tsquery lexeme.
CREATE FUNCTION search_lexeme(word text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT '''' || replace(replace(word, '\', '\\'), '''', '''''') || ''''
$$;

-- The typo lexicon: each title/name word of 4 letters or more under each of its
-- `search_typo_keys`. Words are never removed (a stale word only widens a query to a
-- word no document has); `reindex` rebuilds it.
CREATE TABLE search_terms (
    key  text NOT NULL,
    term text NOT NULL,
    CONSTRAINT search_terms_pkey PRIMARY KEY (key, term)
);

-- Every word of the query as a prefix ("godf" -> 'godf':*), all required.
CREATE FUNCTION search_prefix_query(q text) RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT string_agg(search_lexeme(w) || ':*', ' & ')::tsquery FROM unnest(search_words(q)) AS w
$$;

-- The prefix query where each word of 4 letters or more also matches the indexed words
-- one typo away from it ("godfater" -> 'godfater':* | 'godfather').
CREATE FUNCTION search_fuzzy_query(q text) RETURNS tsquery
LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
SELECT string_agg(
    '(' || search_lexeme(w) || ':*' || coalesce((
        SELECT string_agg(' | ' || search_lexeme(t.term), '' ORDER BY t.term) FROM (
            SELECT DISTINCT term FROM search_terms
            WHERE length(w) >= 4 AND key = ANY(search_typo_keys(w)) AND term <> w
            ORDER BY term LIMIT 16
        ) AS t
    ), '') || ')',
    ' & ')::tsquery
FROM unnest(search_words(q)) AS w
$$;

-- One row per indexed entity. A deleted entity leaves a tombstone (NULL slug, title,
-- summary and tsv) so that a replayed older event cannot bring it back: `version` is the
-- seq of the event that produced the row, and a write only replaces a lower version.
CREATE TABLE search_documents (
    kind    text NOT NULL,
    id      bigint NOT NULL,
    version bigint NOT NULL,
    slug    text,
    title   text,
    summary json,
    tsv     tsvector,
    CONSTRAINT search_documents_pkey PRIMARY KEY (kind, id)
);
-- Full-text matching (prefix and typo expansions are tsquery terms).
CREATE INDEX search_documents_tsv_idx ON search_documents USING gin (tsv);
-- Live searches match the documents of one indexing batch: a version range.
CREATE INDEX search_documents_version_idx ON search_documents (version);
