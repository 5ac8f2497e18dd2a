//! Which code a generated statement may run: only functions, operators, aggregates, casts and
//! types of pg_catalog (and the domains of information_schema's views), plus the schemas a
//! superuser lists in `nl2sql.allowed_function_schemas`.
//!
//! Name resolution follows the caller's search_path, where an exact-type overload in any schema
//! beats the catalog's (a role with CREATE on `public` can define `public.lower(varchar)` or an
//! operator `+(integer, numeric)`, marked IMMUTABLE, and wait for a superuser to ask a question).
//! So the analysed query tree, after the rewriter expanded views and row-security policies, is
//! walked, and every function, operator and type it names is looked up by OID.
//!
//! Types are judged by the code they run: a type is allowed when its input/output functions (and
//! those of its element, base or attribute types) are allowed, so enums, composite types and
//! domains of user schemas can be read; casting *to* a domain runs its constraints, so that needs
//! the domain's schema to be allowed.

use pgrx::pg_sys::{self, Oid};
use std::collections::HashMap;
use std::ffi::{c_void, CStr};

/// Functions of pg_catalog that are not VOLATILE but change state all the same: each call gives
/// the transaction an ID (burning one of the cluster's 2^32). Refused by name.
const SIDE_EFFECTS: &[&str] = &["pg_current_xact_id", "txid_current"];

/// The namespaces whose code generated SQL may run.
pub struct AllowedSchemas {
    namespaces: Vec<Oid>,
}

impl AllowedSchemas {
    /// pg_catalog and information_schema (both made by initdb, where no other role may create
    /// anything), plus the schemas named in `listed` (a comma-separated list of names, as in
    /// search_path; names that do not exist are skipped).
    pub fn new(listed: &str) -> Self {
        let mut namespaces = vec![Oid::from(pg_sys::PG_CATALOG_NAMESPACE)];
        for name in std::iter::once("information_schema".to_owned()).chain(schema_names(listed)) {
            let Ok(name) = std::ffi::CString::new(name) else { continue };
            // SAFETY: a catalog lookup by name; missing_ok, so it returns InvalidOid, not an ERROR.
            let oid = unsafe { pg_sys::get_namespace_oid(name.as_ptr(), true) };
            if oid != pg_sys::InvalidOid {
                namespaces.push(oid);
            }
        }
        Self { namespaces }
    }

    fn allows(&self, namespace: Oid) -> bool {
        self.namespaces.contains(&namespace)
    }
}

/// Identifiers of a comma-separated list: "quoted" ones as written, others folded to lower case.
fn schema_names(listed: &str) -> Vec<String> {
    listed
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\""),
            None => name.to_lowercase(),
        })
        .collect()
}

/// The first function, operator or type of `query` (or of any sub-query, view or policy in it)
/// that lies outside the allowed schemas, named as PostgreSQL writes it.
///
/// # Safety
/// `query` is an analysed and rewritten `Query` of the current transaction.
pub unsafe fn first_disallowed(query: *mut pg_sys::Query, allowed: &AllowedSchemas) -> Option<String> {
    let mut walk = Walk { allowed, types: HashMap::new(), found: None };
    walker(query.cast(), (&mut walk as *mut Walk).cast());
    walk.found
}

struct Walk<'a> {
    allowed: &'a AllowedSchemas,
    /// Types already judged (a query names the same few types many times).
    types: HashMap<Oid, bool>,
    found: Option<String>,
}

/// A palloc'd C string from format_procedure() and friends, as Rust text.
unsafe fn text(c: *mut std::ffi::c_char) -> String {
    CStr::from_ptr(c).to_string_lossy().into_owned()
}

impl Walk<'_> {
    fn refuse(&mut self, what: String) {
        self.found.get_or_insert(what);
    }

    unsafe fn function(&mut self, function: Oid) {
        if function == pg_sys::InvalidOid {
            return;
        }
        let namespace = pg_sys::get_func_namespace(function);
        if !self.allowed.allows(namespace) {
            return self.refuse(format!("function {}", text(pg_sys::format_procedure_qualified(function))));
        }
        let name = pg_sys::get_func_name(function);
        if namespace == Oid::from(pg_sys::PG_CATALOG_NAMESPACE) && !name.is_null() && SIDE_EFFECTS.contains(&text(name).as_str()) {
            self.found.get_or_insert(format!("side effect:{}", text(pg_sys::format_procedure_qualified(function))));
        }
    }

    unsafe fn operator(&mut self, operator: Oid) {
        if operator == pg_sys::InvalidOid {
            return;
        }
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::OPEROID as i32, pg_sys::Datum::from(operator));
        if tuple.is_null() {
            return self.refuse(format!("operator with OID {}", operator.to_u32()));
        }
        let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_operator>(tuple);
        let (namespace, code) = ((*form).oprnamespace, (*form).oprcode);
        pg_sys::ReleaseSysCache(tuple);
        if !self.allowed.allows(namespace) {
            return self.refuse(format!("operator {}", text(pg_sys::format_operator_qualified(operator))));
        }
        self.function(code);
    }

    unsafe fn type_(&mut self, type_: Oid) {
        if !self.type_allowed(type_) {
            self.refuse(format!("type {}", text(pg_sys::format_type_be_qualified(type_))));
        }
    }

    /// Casting to a domain runs its CHECK constraints, which may call any function: the domain's
    /// schema itself must be allowed.
    unsafe fn domain(&mut self, domain: Oid) {
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::TYPEOID as i32, pg_sys::Datum::from(domain));
        let namespace = match tuple.is_null() {
            true => pg_sys::InvalidOid,
            false => {
                let namespace = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_type>(tuple)).typnamespace;
                pg_sys::ReleaseSysCache(tuple);
                namespace
            }
        };
        if !self.allowed.allows(namespace) {
            self.refuse(format!("domain {}", text(pg_sys::format_type_be_qualified(domain))));
        }
    }

    /// A type is allowed when the code that reads and prints its values is.
    unsafe fn type_allowed(&mut self, type_: Oid) -> bool {
        if type_ == pg_sys::InvalidOid {
            return true;
        }
        if let Some(&known) = self.types.get(&type_) {
            return known;
        }
        self.types.insert(type_, true); // a recursive type (a table with a column of its own type) ends here
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::TYPEOID as i32, pg_sys::Datum::from(type_));
        if tuple.is_null() {
            self.types.insert(type_, false);
            return false;
        }
        let form = &*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_type>(tuple);
        let functions = [form.typinput, form.typoutput, form.typreceive, form.typsend, form.typmodin, form.typmodout, form.typsubscript];
        let (namespace, element, base, relation) = (form.typnamespace, form.typelem, form.typbasetype, form.typrelid);
        pg_sys::ReleaseSysCache(tuple);
        let allowed = self.allowed.allows(namespace)
            || (functions.iter().all(|&f| f == pg_sys::InvalidOid || self.allowed.allows(pg_sys::get_func_namespace(f)))
                && self.type_allowed(element)
                && self.type_allowed(base)
                && self.attributes_allowed(relation));
        self.types.insert(type_, allowed);
        allowed
    }

    /// For a composite type: every attribute's type is allowed (a row prints all its columns).
    unsafe fn attributes_allowed(&mut self, relation: Oid) -> bool {
        if relation == pg_sys::InvalidOid {
            return true;
        }
        let descriptor = pg_sys::RelationIdGetRelation(relation);
        if descriptor.is_null() {
            return false;
        }
        let tuple_desc = (*descriptor).rd_att;
        let types: Vec<Oid> = (0..(*tuple_desc).natts as usize)
            .map(|i| *(*tuple_desc).attrs.as_ptr().add(i))
            .filter(|attribute| !attribute.attisdropped)
            .map(|attribute| attribute.atttypid)
            .collect();
        pg_sys::RelationClose(descriptor);
        types.into_iter().all(|t| self.type_allowed(t))
    }

    unsafe fn sort_group_clauses(&mut self, list: *mut pg_sys::List) {
        for clause in pgrx::PgList::<pg_sys::SortGroupClause>::from_pg(list).iter_ptr() {
            self.operator((*clause).eqop);
            self.operator((*clause).sortop);
        }
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, context: *mut c_void) -> bool {
    use pg_sys::NodeTag::*;
    if node.is_null() {
        return false;
    }
    let walk = &mut *(context as *mut Walk);
    if walk.found.is_some() {
        return true;
    }
    match (*node).type_ {
        T_Query => {
            let query = node as *mut pg_sys::Query;
            walk.sort_group_clauses((*query).sortClause);
            walk.sort_group_clauses((*query).groupClause);
            walk.sort_group_clauses((*query).distinctClause);
            // QTW_EXAMINE_SORTGROUP: window clauses (their partition and order lists) are walked too.
            return pg_sys::query_tree_walker(query, Some(walker), context, pg_sys::QTW_EXAMINE_SORTGROUP as i32);
        }
        T_FuncExpr => {
            let e = node as *mut pg_sys::FuncExpr;
            walk.function((*e).funcid);
            walk.type_((*e).funcresulttype);
        }
        T_OpExpr | T_DistinctExpr | T_NullIfExpr => {
            let e = node as *mut pg_sys::OpExpr;
            walk.operator((*e).opno);
            walk.type_((*e).opresulttype);
        }
        T_ScalarArrayOpExpr => {
            let e = node as *mut pg_sys::ScalarArrayOpExpr;
            walk.operator((*e).opno);
            walk.function((*e).hashfuncid);
            walk.function((*e).negfuncid);
        }
        T_RowCompareExpr => {
            let e = node as *mut pg_sys::RowCompareExpr;
            for operator in pgrx::PgList::<c_void>::from_pg((*e).opnos).iter_oid() {
                walk.operator(operator);
            }
        }
        T_Aggref => {
            let e = node as *mut pg_sys::Aggref;
            walk.function((*e).aggfnoid);
            walk.type_((*e).aggtype);
        }
        T_WindowFunc => {
            let e = node as *mut pg_sys::WindowFunc;
            walk.function((*e).winfnoid);
            walk.type_((*e).wintype);
        }
        T_WindowClause => {
            let e = node as *mut pg_sys::WindowClause;
            walk.function((*e).startInRangeFunc);
            walk.function((*e).endInRangeFunc);
        }
        T_SortGroupClause => {
            let e = node as *mut pg_sys::SortGroupClause;
            walk.operator((*e).eqop);
            walk.operator((*e).sortop);
        }
        T_SetOperationStmt => walk.sort_group_clauses((*(node as *mut pg_sys::SetOperationStmt)).groupClauses),
        T_TableSampleClause => walk.function((*(node as *mut pg_sys::TableSampleClause)).tsmhandler),
        T_CoerceToDomain => walk.domain((*(node as *mut pg_sys::CoerceToDomain)).resulttype),
        T_CoerceViaIO => walk.type_((*(node as *mut pg_sys::CoerceViaIO)).resulttype),
        T_ArrayCoerceExpr => walk.type_((*(node as *mut pg_sys::ArrayCoerceExpr)).resulttype),
        T_RelabelType => walk.type_((*(node as *mut pg_sys::RelabelType)).resulttype),
        T_Var => walk.type_((*(node as *mut pg_sys::Var)).vartype),
        T_Const => walk.type_((*(node as *mut pg_sys::Const)).consttype),
        T_Param => walk.type_((*(node as *mut pg_sys::Param)).paramtype),
        T_MinMaxExpr => walk.type_((*(node as *mut pg_sys::MinMaxExpr)).minmaxtype),
        T_CaseExpr => walk.type_((*(node as *mut pg_sys::CaseExpr)).casetype),
        T_ArrayExpr => walk.type_((*(node as *mut pg_sys::ArrayExpr)).array_typeid),
        T_RowExpr => walk.type_((*(node as *mut pg_sys::RowExpr)).row_typeid),
        _ => {}
    }
    if walk.found.is_some() {
        return true;
    }
    pg_sys::expression_tree_walker(node, Some(walker), context)
}

#[cfg(test)]
mod tests {
    #[test]
    fn schema_names_fold_unquoted_and_keep_quoted() {
        assert_eq!(super::schema_names(" Public, \"Mixed\"\"Case\" ,,ext "), ["public", "Mixed\"Case", "ext"]);
        assert!(super::schema_names("").is_empty());
    }
}
