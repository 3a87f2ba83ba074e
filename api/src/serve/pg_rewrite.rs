//! Rewrites of PostgreSQL clients' SQL that DataFusion cannot plan as sent, applied to the parsed
//! statement before the warehouse plans it.
//!
//! BI tools learn a table's columns, keys and indexes from `pg_catalog` with queries written for
//! PostgreSQL itself. SQLAlchemy's inspector (which Superset calls when a dataset is added) uses
//! three constructs DataFusion lacks: correlated scalar subqueries inside `CASE` (column defaults,
//! identity and collation), `unnest` and `generate_subscripts` of `int2vector` columns (the
//! columns of a key or an index), and `pg_class.reloptions`. pgjdbc (Metabase's driver) asks for
//! primary keys with `information_schema._pg_expandarray(indkey)` and reads its fields as
//! `(keys).x`. The catalog rewrites apply only to
//! statements that read nothing but `pg_catalog` and `information_schema`, so an analyst's own
//! query is never changed behind their back.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Query, SelectItem, SetExpr, Statement,
    TableFactor, Value, Visit, VisitMut, Visitor, VisitorMut, visit_expressions_mut, visit_relations,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Every rewrite, in place.
pub fn rewrite(statement: &mut Statement) {
    rewrite_like_escapes(statement);
    if reads_only_catalogs(statement) {
        rewrite_catalog_functions(statement);
        let _ = VisitMut::visit(statement, &mut CatalogProjections);
    }
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

/// `x LIKE p ESCAPE '/'` as `x LIKE pg_like_pattern(p, '/')`: DataFusion knows only the backslash
/// as escape character, and SQLAlchemy lists schemas with `NOT LIKE 'pg/_' || '%' ESCAPE '/'`.
fn rewrite_like_escapes(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Like {
            pattern, escape_char, ..
        }
        | Expr::ILike {
            pattern, escape_char, ..
        } = expr
            && let Some(escape) = escape_char
            && let Value::SingleQuotedString(character) = &escape.value
            && character != "\\"
            && let Some(rewritten) = parse_expr(&format!(
                "pg_like_pattern({pattern}, '{}')",
                character.replace('\'', "''")
            ))
        {
            **pattern = rewritten;
            *escape_char = None;
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Whether every relation the statement names is a catalog table (`pg_catalog.*`,
/// `information_schema.*`, or a bare `pg_*` name, which PostgreSQL finds in `pg_catalog`).
/// Catalog tables are small and their SQL comes from drivers, which is what the rewrites are for.
fn reads_only_catalogs(statement: &Statement) -> bool {
    let mut any = false;
    let outside = visit_relations(statement, |name| {
        any = true;
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
            .collect();
        let catalog = match parts.as_slice() {
            [.., schema, _] => schema == "pg_catalog" || schema == "information_schema",
            // (and `generate_series`, a table function pgjdbc calls as `pg_catalog.generate_series`
            // for key positions, which arrives here unqualified)
            [table] => table.starts_with("pg_") || table == "generate_series",
            [] => false,
        };
        if catalog {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    });
    any && outside.is_continue()
}

/// The column an expression names, lower case.
fn column_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(ident.value.to_ascii_lowercase()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.to_ascii_lowercase()),
        _ => None,
    }
}

/// The element type of an `int2vector` or `oidvector` column of `pg_index`, which the catalog
/// keeps as space-separated text (`'1 2'`).
fn vector_type(expr: &Expr) -> Option<&'static str> {
    match column_name(expr)?.as_str() {
        "indkey" | "indoption" => Some("SMALLINT[]"),
        "indclass" | "indcollation" => Some("INT[]"),
        _ => None,
    }
}

/// The function's name (last part, lower case) and its plain arguments.
fn call(expr: &Expr) -> Option<(String, Vec<&Expr>)> {
    let Expr::Function(function) = expr else {
        return None;
    };
    let name = function.name.0.last()?.as_ident()?.value.to_ascii_lowercase();
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    let args = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((name, args))
}

/// `unnest(indkey)` as `unnest(CAST(string_to_array(indkey, ' ') AS SMALLINT[]))`, and
/// `generate_subscripts(indkey, 1)` as the positions 1..n of that array (the `1` kept, since a
/// client binds it as a parameter). `_pg_expandarray(indkey)` as a record of NULLs: it pairs a
/// key's columns with their positions, and the warehouse's tables have no keys (the catalog's
/// own rows, PostgreSQL's system tables, lose theirs). `(record).field` as
/// `get_field(record, 'field')`, which is how DataFusion spells it.
fn rewrite_catalog_functions(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        // `conkey[n]`: the catalog keeps a constraint's columns as text, `[1, 2]`.
        // (`con.conkey[n]` parses as `con` followed by `.conkey` and `[n]`.)
        if let Expr::CompoundFieldAccess { root, access_chain } = &*expr
            && let [path @ .., subscript @ AccessExpr::Subscript(_)] = access_chain.as_slice()
            && let column = path.iter().fold(root.to_string(), |text, step| format!("{text}{step}"))
            && let Some(name) = column.rsplit('.').next()
            && (name.eq_ignore_ascii_case("conkey") || name.eq_ignore_ascii_case("confkey"))
            && let Some(rewritten) = parse_expr(&format!(
                "CAST(string_to_array(btrim({column}, '[]'), ', ') AS SMALLINT[]){subscript}"
            ))
        {
            *expr = rewritten;
            return ControlFlow::<()>::Continue(());
        }
        if let Expr::CompoundFieldAccess { root, access_chain } = &*expr
            && let [AccessExpr::Dot(Expr::Identifier(field))] = access_chain.as_slice()
            && let Some(rewritten) = parse_expr(&format!("get_field({root}, '{}')", field.value.replace('\'', "''")))
        {
            *expr = rewritten;
            return ControlFlow::<()>::Continue(());
        }
        let replacement = match call(expr) {
            Some((name, args)) if name == "_pg_expandarray" && args.len() == 1 => {
                Some("named_struct('x', CAST(NULL AS INT), 'n', CAST(NULL AS INT))".to_string())
            }
            Some((name, args)) if name == "unnest" && args.len() == 1 => {
                vector_type(args[0]).map(|t| format!("unnest(CAST(string_to_array({}, ' ') AS {t}))", args[0]))
            }
            Some((name, args)) if name == "generate_subscripts" && args.len() == 2 => vector_type(args[0]).map(|t| {
                format!(
                    "unnest(generate_series(1, array_length(CAST(string_to_array({}, ' ') AS {t}), {})))",
                    args[0], args[1]
                )
            }),
            _ => None,
        };
        if let Some(rewritten) = replacement.as_deref().and_then(parse_expr) {
            *expr = rewritten;
        }
        ControlFlow::<()>::Continue(())
    });
}

/// In each SELECT list of a catalog query: a correlated scalar subquery becomes NULL, and
/// `reloptions` (which the catalog does not have) a NULL text array.
///
/// NULL is what PostgreSQL itself answers for our tables: the subqueries SQLAlchemy sends look up
/// column defaults (`pg_attrdef`), identity sequences and collations, and no warehouse column has
/// a default, an identity or a collation of its own; no table has storage options.
struct CatalogProjections;

impl VisitorMut for CatalogProjections {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        for item in &mut select.projection {
            let alias = match &*item {
                SelectItem::ExprWithAlias { alias, .. } => alias.clone(),
                _ => Ident::new("reloptions"),
            };
            let expr = match item {
                SelectItem::UnnamedExpr(expr)
                | SelectItem::ExprWithAlias { expr, .. }
                | SelectItem::ExprWithAliases { expr, .. } => expr,
                _ => continue,
            };
            let _ = visit_expressions_mut(expr, |inner| {
                if let Expr::Subquery(subquery) = inner
                    && is_correlated(subquery)
                    && let Some(null) = parse_expr("CAST(NULL AS TEXT)")
                {
                    *inner = null;
                }
                ControlFlow::<()>::Continue(())
            });
            let reloptions = match &*expr {
                Expr::Identifier(ident) => ident.value.eq_ignore_ascii_case("reloptions"),
                Expr::CompoundIdentifier(parts) => {
                    parts.last().is_some_and(|p| p.value.eq_ignore_ascii_case("reloptions"))
                }
                _ => false,
            };
            if reloptions && let Some(null) = parse_expr("CAST(NULL AS TEXT[])") {
                *item = SelectItem::ExprWithAlias { expr: null, alias };
            }
        }
        ControlFlow::Continue(())
    }
}

/// Whether a subquery refers to a table of the query around it: a qualified column whose table
/// is none of the subquery's own tables or aliases.
fn is_correlated(subquery: &Query) -> bool {
    #[derive(Default)]
    struct Names {
        own: HashSet<String>,
        qualifiers: HashSet<String>,
    }
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            match factor {
                TableFactor::Table { name, alias, .. } => {
                    if let Some(table) = name.0.last().and_then(|p| p.as_ident()) {
                        self.own.insert(table.value.to_ascii_lowercase());
                    }
                    if let Some(alias) = alias {
                        self.own.insert(alias.name.value.to_ascii_lowercase());
                    }
                }
                TableFactor::Derived { alias: Some(alias), .. } => {
                    self.own.insert(alias.name.value.to_ascii_lowercase());
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = expr
                && parts.len() >= 2
            {
                self.qualifiers
                    .insert(parts[parts.len() - 2].value.to_ascii_lowercase());
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names::default();
    let _ = Visit::visit(subquery, &mut names);
    names.qualifiers.iter().any(|q| !names.own.contains(q))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statement())
            .unwrap();
        rewrite(&mut statement);
        statement.to_string()
    }

    #[test]
    fn correlated_subqueries_in_a_catalog_projection_become_null() {
        let sql = "SELECT a.attname, CASE WHEN a.atthasdef THEN (SELECT pg_get_expr(d.adbin, d.adrelid) \
                   FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid) ELSE NULL END AS \"default\", \
                   (SELECT count(*) FROM pg_catalog.pg_type AS t) AS types \
                   FROM pg_catalog.pg_attribute a";
        let out = rewritten(sql);
        assert!(
            out.contains("THEN CAST(NULL AS TEXT) ELSE NULL END AS \"default\""),
            "{out}"
        );
        // Not correlated: DataFusion plans it, so it stays.
        assert!(
            out.contains("(SELECT count(*) FROM pg_catalog.pg_type AS t) AS types"),
            "{out}"
        );
    }

    #[test]
    fn index_key_vectors_unnest_as_arrays_with_their_positions() {
        let out = rewritten(
            "SELECT i.indexrelid, unnest(i.indkey) AS attnum, generate_subscripts(i.indkey, $1) AS ord, \
             c.reloptions FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid",
        );
        assert!(
            out.contains("unnest(CAST(string_to_array(i.indkey, ' ') AS SMALLINT[])) AS attnum"),
            "{out}"
        );
        assert!(
            out.contains("unnest(generate_series(1, array_length(CAST(string_to_array(i.indkey, ' ') AS SMALLINT[]), $1))) AS ord"),
            "{out}"
        );
        assert!(out.contains("CAST(NULL AS TEXT[]) AS reloptions"), "{out}");
        // pgjdbc's primary keys.
        let out = rewritten(
            "SELECT r.a FROM (SELECT (information_schema._pg_expandarray(i.indkey)).n AS key_seq, \
             information_schema._pg_expandarray(i.indkey) AS keys, i.indrelid AS a FROM pg_catalog.pg_index i) r \
             WHERE r.a = (r.keys).x",
        );
        assert!(
            out.contains("get_field((named_struct('x', CAST(NULL AS INT), 'n', CAST(NULL AS INT))), 'n') AS key_seq"),
            "{out}"
        );
        assert!(out.contains("WHERE r.a = get_field((r.keys), 'x')"), "{out}");
        // pgjdbc's foreign keys.
        let out = rewritten(
            "SELECT con.conname FROM pg_catalog.pg_constraint con, pg_catalog.generate_series(1, 32) pos(n) \
             WHERE con.conkey[pos.n] = 1",
        );
        assert!(
            out.contains("WHERE CAST(string_to_array(btrim(con.conkey, '[]'), ', ') AS SMALLINT[])[pos.n] = 1"),
            "{out}"
        );
    }

    #[test]
    fn queries_on_warehouse_tables_are_left_alone() {
        let sql = "SELECT CASE WHEN c.churned THEN (SELECT max(o.order_date) FROM core.sales_order o \
                   WHERE o.customer_key = c.customer_key) END AS last_order, c.reloptions FROM marts.customer_7p c";
        let mut statement = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statement())
            .unwrap();
        let before = statement.to_string();
        rewrite(&mut statement);
        assert_eq!(statement.to_string(), before);
        // ... except for LIKE escapes, which every query gets.
        let out = rewritten("SELECT name FROM marts.customer_7p WHERE name LIKE 'a/_%' ESCAPE '/'");
        assert!(out.contains("LIKE pg_like_pattern('a/_%', '/')"), "{out}");
    }
}
