//! Tests on a real PostgreSQL server (`cargo pgrx test`). pgrx-tests calls every test as
//! tests.<name>(), so all of them live in this one `tests` schema; each file holds one theme.
//! Every test runs in its own connection and transaction, rolled back at the end.

#[pgrx::pg_schema]
mod tests {
    use crate::provenance::AllowedSchemas;
    use crate::statement::{self, ResultSet, StatementFailure};
    use crate::subtransaction::catch_pg_error;
    use pgrx::prelude::*;
    use pgrx::JsonB;
    use serde_json::{json, Value};

    include!("tests/support.rs");
    include!("tests/checker.rs");
    include!("tests/running.rs");
    include!("tests/exact_arithmetic.rs");
    include!("tests/csv_loader.rs");
    include!("tests/settings_and_inputs.rs");
    include!("tests/privileges.rs");
    include!("tests/security.rs");
    include!("tests/context.rs");
    include!("tests/adversarial.rs");
    include!("tests/faults.rs");
    include!("tests/with_model.rs");
}
