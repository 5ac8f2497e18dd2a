//! Virtual foreign keys: `nl2sql_add_virtual_foreign_key('fare', '{from_airport}', 'airport',
//! '{airport_code}')` says that columns join another table's columns where no FOREIGN KEY
//! constraint says so. Schemas loaded from files, warehouses and many legacy databases declare
//! none, and a small model then guesses joins between any two id columns. The model is shown a
//! virtual key as a foreign key, and schema linking follows it, exactly as a declared one
//! (catalog.sql); nothing enforces it. BI tools know the same idea (DBeaver's virtual foreign
//! keys, Metabase's foreign-key fields). Stored in nl2sql_virtual_foreign_keys by column number,
//! like pg_constraint; changing it takes INSERT/DELETE there, the owner's by default.

use crate::errors::{Nl2sqlError, Result};
use crate::guc_scope::{with_settings, PINNED_SEARCH_PATH};
use crate::own_tables::table;
use crate::subtransaction::catch_pg_error;
use nl2sql_engine::schema::quote_ident;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

const EXAMPLE: &str = "SELECT nl2sql_add_virtual_foreign_key('orders', '{customer_id}', 'customers', '{id}');";

/// Columns of `referencing` that join `referenced_columns` of `referenced`.
pub struct VirtualForeignKey<'a> {
    pub referencing: &'a str,
    pub columns: &'a [String],
    pub referenced: &'a str,
    pub referenced_columns: &'a [String],
}

/// Adds the key after checking it as the caller; false if it was there already.
pub fn add(key: &VirtualForeignKey) -> Result<bool> {
    let (referencing, referenced) = key.check()?;
    let sql = format!(
        "INSERT INTO {} (conrelid, conkey, confrelid, confkey)
         SELECT $1::pg_catalog.oid, ({}), $3::pg_catalog.oid, ({})
         ON CONFLICT DO NOTHING",
        table("nl2sql_virtual_foreign_keys"),
        attnums("$1", "$2"),
        attnums("$3", "$4"),
    );
    change(&sql, key, referencing, referenced, "INSERT")
}

/// Removes the key; false if there was none.
pub fn drop(key: &VirtualForeignKey) -> Result<bool> {
    let (referencing, referenced) = key.resolve()?;
    let sql = format!(
        "DELETE FROM {} WHERE conrelid = $1::pg_catalog.oid AND conkey = ({}) AND confrelid = $3::pg_catalog.oid AND confkey = ({})",
        table("nl2sql_virtual_foreign_keys"),
        attnums("$1", "$2"),
        attnums("$3", "$4"),
    );
    change(&sql, key, referencing, referenced, "DELETE")
}

/// The numbers of the columns named by the text[] parameter `names` in the relation `relation`,
/// in their order.
fn attnums(relation: &str, names: &str) -> String {
    format!(
        "SELECT pg_catalog.array_agg(a.attnum ORDER BY u.ord) FROM pg_catalog.unnest({names}::pg_catalog.text[]) WITH ORDINALITY AS u(name, ord)
         JOIN pg_catalog.pg_attribute a ON a.attrelid = {relation}::pg_catalog.oid AND a.attname = u.name AND a.attnum > 0 AND NOT a.attisdropped"
    )
}

/// Runs the INSERT or DELETE `sql` on the table of keys; whether it changed a row.
fn change(sql: &str, key: &VirtualForeignKey, referencing: i64, referenced: i64, privilege: &str) -> Result<bool> {
    let arguments: Vec<pgrx::datum::DatumWithOid> =
        vec![referencing.into(), key.columns.to_vec().into(), referenced.into(), key.referenced_columns.to_vec().into()];
    let changed = catch_pg_error(
        std::panic::AssertUnwindSafe(|| with_settings(&[PINNED_SEARCH_PATH], || Spi::connect_mut(|client| client.update(sql, None, &arguments).map(|t| t.len())))),
        |_| false,
    );
    match changed {
        Ok(rows) => Ok(rows.map_err(|e| Nl2sqlError::internal("changing the virtual foreign keys", e))? > 0),
        Err(e) if e.code == PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE => Err(e.hint(format!(
            "The owner of the extension grants {privilege} ON nl2sql_virtual_foreign_keys to the roles that curate the schema's joins."
        ))),
        Err(e) => Err(e),
    }
}

impl VirtualForeignKey<'_> {
    /// Both relations' oids, named as the caller names them (its search_path).
    fn resolve(&self) -> Result<(i64, i64)> {
        if self.columns.is_empty() || self.columns.len() != self.referenced_columns.len() {
            return Err(Nl2sqlError::invalid_input(format!(
                "a virtual foreign key needs as many referenced columns as columns, at least one (here {} and {})",
                self.columns.len(),
                self.referenced_columns.len()
            ))
            .hint(EXAMPLE));
        }
        let oid = |name: &str| -> Result<i64> {
            catch_pg_error(std::panic::AssertUnwindSafe(|| Spi::get_one_with_args::<i64>("SELECT $1::pg_catalog.regclass::pg_catalog.oid::pg_catalog.int8", &[name.into()])), |_| false)?
                .map_err(|e| Nl2sqlError::internal("looking up a relation", e))?
                .ok_or_else(|| Nl2sqlError::internal("looking up a relation", "no oid"))
        };
        Ok((oid(self.referencing)?, oid(self.referenced)?))
    }

    /// Resolves the relations and checks, as the caller, that it may read every column and that
    /// each pair compares with `=`: PostgreSQL plans a join on them (and runs nothing).
    fn check(&self) -> Result<(i64, i64)> {
        let (referencing, referenced) = self.resolve()?;
        let name = |oid: i64| -> Result<String> {
            Spi::get_one_with_args::<String>("SELECT $1::pg_catalog.oid::pg_catalog.regclass::pg_catalog.text", &[oid.into()])
                .map_err(|e| Nl2sqlError::internal("naming a relation", e))?
                .ok_or_else(|| Nl2sqlError::internal("naming a relation", "no name"))
        };
        let on: Vec<String> = self
            .columns
            .iter()
            .zip(self.referenced_columns)
            .map(|(column, referenced)| format!("referencing.{} = referenced.{}", quote_ident(column), quote_ident(referenced)))
            .collect();
        let join = format!("SELECT FROM {} AS referencing JOIN {} AS referenced ON {} LIMIT 0", name(referencing)?, name(referenced)?, on.join(" AND "));
        catch_pg_error(std::panic::AssertUnwindSafe(|| Spi::run(&join)), |_| false)
            .map_err(|e| Nl2sqlError { message: format!("the virtual foreign key cannot join: {}", e.message), ..e })?
            .map_err(|e| Nl2sqlError::internal("checking the join", e))?;
        Ok((referencing, referenced))
    }
}
