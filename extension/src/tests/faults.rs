// Faults of the machine under nl2sql: a model file the server may not read, too little memory to
// load the model, a disk that fills up under nl2sql_load_csv. Each must be a clear ERROR that leaves the backend running and nothing
// half-written. (A server restarted or a backend killed mid-question needs a server the test can
// restart: web/tests/faults.rs.)

/// A model file whose mode lets nobody read it (the server's OS user is not root): the ERROR says
/// so and names the file. (Missing, empty, not GGUF, damaged, truncated and other architectures:
/// engine/src/model.rs and engine/tests.)
#[pg_test]
fn a_model_file_the_server_may_not_read_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    run("CREATE TABLE orders (id int, total numeric)");
    let path = std::env::temp_dir().join(format!("nl2sql-unreadable-{}.gguf", std::process::id()));
    std::fs::write(&path, b"GGUF").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    run(&format!("SET nl2sql.model_path = {}", sql_literal(&path.display().to_string())));
    let error = error_of("SELECT nl2sql_sql('How many orders are there?')");
    let _ = std::fs::remove_file(&path);
    assert!(error.contains(&path.display().to_string()) && error.contains("cannot open it (Permission denied"), "{error}");
    assert!(error.contains("HINT: Run scripts/fetch-model"), "{error}");
}

/// This backend's address-space limit (`ulimit -v`, RLIMIT_AS) set to its size now plus `room`
/// bytes, until dropped.
struct AddressSpaceLimit(libc::rlimit);

impl AddressSpaceLimit {
    fn room(room: u64) -> Self {
        let mut previous = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit write and read only the struct passed.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut previous) }, 0);
        let size = nl2sql_engine::memory::virtual_size().expect("/proc/self/status");
        let limit = libc::rlimit { rlim_cur: size + room, rlim_max: previous.rlim_max };
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0, "RLIMIT_AS {}", size + room);
        Self(previous)
    }
}

impl Drop for AddressSpaceLimit {
    fn drop(&mut self) {
        // SAFETY: as above; raising the soft limit back to where it was is within the hard limit.
        unsafe { libc::setrlimit(libc::RLIMIT_AS, &self.0) };
    }
}

/// Without the check before loading, a load that runs out of address space aborts the backend
/// (Rust's allocator aborts on failure), and the postmaster then ends every session to recover.
/// The check refuses first; and since it uses the same estimate, a limit of exactly that estimate
/// must let the model load, or the estimate is too small.
#[pg_test]
fn too_little_memory_to_load_the_model_is_a_clear_error_and_the_backend_lives() {
    run("CREATE TABLE orders (id int, total numeric)");
    let model = crate::gucs::model_path();
    let needed = nl2sql_engine::Engine::memory_to_load(&model).unwrap_or_else(|e| panic!("the model's header: {e}"));
    {
        let _limit = AddressSpaceLimit::room(needed / 2);
        let error = error_of("SELECT nl2sql_sql('How many orders are there?')");
        assert!(error.contains("not enough memory to load model file") && error.contains("ulimit -v"), "{error}");
        assert!(error.contains("nl2sql.backend = 'openai'"), "the hint names a way out: {error}");
        assert!(crate::backend_model::loaded().is_none(), "nothing was loaded");
    }
    assert_eq!(one::<i64>("SELECT count(*) FROM orders"), 0, "the backend still answers");
    {
        // The estimate plus what this backend may allocate between now and the check.
        let _limit = AddressSpaceLimit::room(needed + (64 << 20));
        crate::backend_model::with_engine(|_| ()).unwrap_or_else(|e| panic!("loading within the estimate: {}", e.message));
    }
    assert!(crate::backend_model::loaded().is_some());
}

/// A tablespace on a nearly full filesystem (scripts/test mounts a 1 MiB tmpfs and names it in
/// NL2SQL_TEST_FULL_DISK; postgresql_conf_options passes it on as nl2sql_test.full_disk). It is
/// created and dropped through dblink, outside this test's transaction: CREATE TABLESPACE cannot
/// run inside one.
struct FullDisk {
    connection: String,
    directory: String,
}

impl FullDisk {
    fn create() -> Self {
        let directory = one::<String>("SELECT current_setting('nl2sql_test.full_disk', true)");
        assert!(!directory.is_empty(), "no full disk to test with: run the tests through scripts/test, which mounts one");
        run("CREATE EXTENSION dblink");
        let connection = one::<String>(
            "SELECT format('dbname=%s port=%s host=%s user=%s', current_database(), current_setting('port'), \
             split_part(current_setting('unix_socket_directories'), ',', 1), session_user)",
        );
        let disk = Self { connection, directory };
        disk.exec("DROP TABLESPACE IF EXISTS nl2sql_full_disk");
        disk.exec(&format!("CREATE TABLESPACE nl2sql_full_disk LOCATION {}", sql_literal(&disk.directory)));
        disk
    }

    fn exec(&self, sql: &str) {
        run(&self.dblink_exec(sql));
    }

    fn dblink_exec(&self, sql: &str) -> String {
        format!("SELECT dblink_exec({}, {})", sql_literal(&self.connection), sql_literal(sql))
    }

    /// Every file under the tablespace's directory.
    fn files(&self) -> Vec<std::path::PathBuf> {
        fn walk(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                match entry.file_type().is_ok_and(|t| t.is_dir()) {
                    true => walk(&entry.path(), found),
                    false => found.push(entry.path()),
                }
            }
        }
        let mut found = Vec::new();
        walk(std::path::Path::new(&self.directory), &mut found);
        found
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        // Not run(): a panic while a failed test unwinds would abort the backend.
        let _ = Spi::run(&self.dblink_exec("DROP TABLESPACE IF EXISTS nl2sql_full_disk"));
    }
}

/// The load runs as a user runs it, a statement in a transaction of its own (here another
/// session's, through dblink): PostgreSQL frees the files of a table created in a transaction
/// when that transaction ends, so only then can the disk be checked.
#[pg_test]
fn a_disk_full_during_nl2sql_load_csv_is_a_clear_error_and_nothing_is_left() {
    let disk = FullDisk::create();
    // The demo file's 49,574 rows take about 4 MiB as a table: more than the disk holds.
    let load = format!(
        "SET default_tablespace = nl2sql_full_disk; SELECT nl2sql_load_csv({}, 'pizza_sales_on_a_full_disk')",
        sql_literal(DEMO_CSV)
    );
    let error = error_of(&disk.dblink_exec(&load));
    assert!(error.contains("could not extend file") && error.contains("No space left on device"), "{error}");
    assert!(one::<bool>("SELECT to_regclass('pizza_sales_on_a_full_disk') IS NULL"), "no table, not even an empty one");
    // PostgreSQL truncates the files of a dropped table at once and unlinks them at the next
    // checkpoint (so that their numbers are not reused before it).
    let left: Vec<(std::path::PathBuf, u64)> = disk.files().into_iter().map(|f| (f.clone(), f.metadata().unwrap().len())).collect();
    assert!(left.iter().all(|(_, bytes)| *bytes == 0), "no data is left on the full disk: {left:?}");
    load_demo();
    assert_eq!(one::<i64>("SELECT count(*) FROM pizza_sales"), DEMO_ROWS, "the same load works where there is room");
}
