//! The words a generated statement may use besides the schema's own names: SQL keywords, and the
//! PostgreSQL functions, types and EXTRACT fields a text-to-SQL answer needs (all of pg_catalog,
//! as the extension only runs pg_catalog's code by default). Lower case, sorted (binary search).

/// Keywords of SELECT statements (reserved and the unreserved ones queries use).
pub(crate) const KEYWORDS: &[&str] = &[
    "all", "and", "any", "array", "as", "asc", "at", "between", "both", "by", "case", "cast",
    "collate", "cross", "current", "current_date", "current_time", "current_timestamp",
    "current_user", "day", "days", "default", "desc", "distinct", "do", "else", "end", "escape",
    "except", "exists", "extract", "false", "fetch", "filter", "first", "following", "for", "from",
    "full", "group", "groups", "having", "hour", "hours", "ilike", "in", "inner", "intersect",
    "interval", "into", "is", "isnull", "join", "last", "lateral", "leading", "left", "like",
    "limit", "localtime", "localtimestamp", "minute", "minutes", "month", "months", "natural",
    "next", "not", "notnull", "null", "nulls", "of", "offset", "on", "only", "or", "order",
    "ordinality", "outer", "over", "overlaps", "partition", "placing", "preceding", "range",
    "recursive", "right", "row", "rows", "second", "seconds", "select", "session_user", "similar",
    "some", "symmetric", "table", "tablesample", "then", "ties", "to", "trailing", "true",
    "unbounded", "union", "unknown", "user", "using", "values", "week", "weeks", "when", "where",
    "window", "with", "within", "without", "year", "years", "zone",
];

/// Functions of pg_catalog a query may call (names only; the server checks the arguments).
pub(crate) const FUNCTIONS: &[&str] = &[
    "abs", "acos", "age", "array_agg", "array_append", "array_length", "array_position",
    "array_remove", "array_to_string", "ascii", "asin", "atan", "atan2", "avg", "bit_and",
    "bit_length", "bit_or", "bool_and", "bool_or", "btrim", "cardinality", "cbrt", "ceil",
    "ceiling", "char_length", "character_length", "chr", "clock_timestamp", "coalesce", "concat",
    "concat_ws", "corr", "cos", "count", "covar_pop", "covar_samp", "cume_dist", "date_bin",
    "date_part", "date_trunc", "degrees", "dense_rank", "div", "every", "exp", "first_value",
    "floor", "format", "generate_series", "greatest", "initcap", "isfinite", "json_agg",
    "json_array_elements", "json_build_object", "json_extract_path_text", "json_object_agg",
    "jsonb_agg", "jsonb_array_elements", "jsonb_build_object", "justify_days", "justify_hours",
    "lag", "last_value", "lead", "least", "left", "length", "ln", "log", "log10", "lower", "lpad",
    "ltrim", "make_date", "make_interval", "make_time", "make_timestamp", "max", "md5", "min",
    "mod", "mode", "now", "nth_value", "ntile", "nullif", "octet_length", "overlay", "percent_rank",
    "percentile_cont", "percentile_disc", "pi", "position", "power", "radians", "rank",
    "regexp_match", "regexp_matches", "regexp_replace", "regexp_split_to_array", "regr_slope",
    "repeat", "replace", "reverse", "right", "round", "row_number", "rpad", "rtrim", "scale",
    "sign", "sin", "split_part", "sqrt", "starts_with", "statement_timestamp", "stddev",
    "stddev_pop", "stddev_samp", "string_agg", "string_to_array", "strpos", "substr", "substring",
    "sum", "tan", "to_char", "to_date", "to_json", "to_jsonb", "to_number", "to_timestamp",
    "transaction_timestamp", "translate", "trim", "trunc", "unnest", "upper", "var_pop", "var_samp",
    "variance", "width_bucket",
];

/// Aggregate functions: one may not appear directly inside another's arguments.
pub(crate) const AGGREGATES: &[&str] = &[
    "array_agg", "avg", "bit_and", "bit_or", "bool_and", "bool_or", "corr", "count", "covar_pop",
    "covar_samp", "every", "json_agg", "json_object_agg", "jsonb_agg", "max", "min", "mode",
    "percentile_cont", "percentile_disc", "regr_slope", "stddev", "stddev_pop", "stddev_samp",
    "string_agg", "sum", "var_pop", "var_samp", "variance",
];

/// Words of type names (after `::`, in CAST(... AS type), before a typed literal).
pub(crate) const TYPE_WORDS: &[&str] = &[
    "bigint", "bool", "boolean", "bytea", "char", "character", "date", "decimal", "double", "float",
    "float4", "float8", "int", "int2", "int4", "int8", "integer", "interval", "json", "jsonb",
    "money", "name", "numeric", "oid", "precision", "real", "smallint", "text", "time", "timestamp",
    "timestamptz", "timetz", "uuid", "varchar", "varying", "with", "without", "zone",
];

/// Functions whose result is a number whatever they read (never a date, time or interval).
pub(crate) const NUMBER_FUNCTIONS: &[&str] = &[
    "char_length", "character_length", "count", "date_part", "dense_rank", "extract", "length",
    "octet_length", "position", "rank", "row_number", "strpos",
];

/// Fields of EXTRACT(field FROM ...).
pub(crate) const EXTRACT_FIELDS: &[&str] = &[
    "century", "day", "decade", "dow", "doy", "epoch", "hour", "isodow", "isoyear", "julian",
    "microseconds", "millennium", "milliseconds", "minute", "month", "quarter", "second",
    "timezone", "timezone_hour", "timezone_minute", "week", "year",
];

pub(crate) fn contains(list: &[&str], word: &str) -> bool {
    list.binary_search(&word).is_ok()
}

pub(crate) fn any_starts_with(list: &[&str], prefix: &str) -> bool {
    // Sorted: the first word not less than the prefix is the one that could start with it.
    let at = list.partition_point(|w| *w < prefix);
    list.get(at).is_some_and(|w| w.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_lower_case_and_without_repeats() {
        for list in [KEYWORDS, FUNCTIONS, AGGREGATES, TYPE_WORDS, EXTRACT_FIELDS, NUMBER_FUNCTIONS] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{:?}", list.windows(2).find(|w| w[0] >= w[1]));
            assert!(list.iter().all(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())));
        }
        assert!(AGGREGATES.iter().all(|a| contains(FUNCTIONS, a)), "every aggregate is a function");
    }

    #[test]
    fn prefix_search() {
        assert!(any_starts_with(FUNCTIONS, "date_t"));
        assert!(!any_starts_with(FUNCTIONS, "dayofw"));
        assert!(any_starts_with(KEYWORDS, ""));
    }
}
