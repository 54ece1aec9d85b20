//! Peers of the protocol health checks: throwaway Redis, MariaDB and PostgreSQL servers from
//! Debian's packages on a loopback port in a temporary directory, nginx answering with what a
//! request carried, and a listener that holds a port and answers nothing or garbage.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, Uid, User};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long a database has to start listening, or to stop.
const PEER_LIMIT: Duration = Duration::from_secs(30);

/// `program` from Debian's `package`: on PATH, in the sbin directories, or in PostgreSQL's
/// versioned directory. When it is missing a test skips after saying why; under CI=true it
/// fails instead, since CI installs every package.
pub fn peer_program(program: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut postgres: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|versions| versions.flatten().map(|v| v.path().join("bin")).collect())
        .unwrap_or_default();
    postgres.sort();
    let found = (std::env::split_paths(&path))
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .chain(postgres.into_iter().rev())
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        let why = format!("{program} is not installed (apt-get install {package})");
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{why}, and CI must run this test");
        }
        eprintln!("skipped: {why}");
    }
    found
}

/// A database server process in its own temporary directory, stopped when dropped.
pub struct Database {
    child: Option<Child>,
    dir: tempfile::TempDir,
    what: &'static str,
    log: PathBuf,
    /// How the server shuts down at once without leaving processes behind.
    stop_signal: Signal,
    pub address: SocketAddr,
}

impl Database {
    /// redis-server on `port`, saving nothing.
    pub async fn redis(program: &Path, port: u16) -> Database {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("redis.log");
        let mut command = Command::new(program);
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log);
        Database::spawn(command, dir, "redis-server", log, Signal::SIGKILL, port).await
    }

    /// mariadbd on `port`, its data directory made by `mariadb-install-db` first; `init` is SQL
    /// run at start (users for the checks). Host names are not resolved, so a login from
    /// 127.0.0.1 is matched against users `@'127.0.0.1'` only.
    pub async fn mariadb(install_db: &Path, mariadbd: &Path, port: u16, init: &str) -> Database {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let root = Uid::effective().is_root();
        let mut install = Command::new(install_db);
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(root.then_some("--user=root"));
        let output = install.output().unwrap();
        assert!(
            output.status.success(),
            "mariadb-install-db failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(dir.path().join("init.sql"), init).unwrap();
        let log = dir.path().join("error.log");
        let mut command = Command::new(mariadbd);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!(
                "--socket={}",
                dir.path().join("mysqld.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!(
                "--init-file={}",
                dir.path().join("init.sql").display()
            ))
            .args([&format!("--port={port}"), "--bind-address=127.0.0.1"])
            .args(["--skip-name-resolve", "--innodb-buffer-pool-size=16M"])
            .args(root.then_some("--user=root"));
        Database::spawn(command, dir, "mariadbd", log, Signal::SIGKILL, port).await
    }

    /// postgres on `port` with trust authentication but for user `secret`, its cluster made by
    /// `initdb` first; both run as the `postgres` user when this is root (PostgreSQL refuses
    /// root). It logs to its standard error.
    pub async fn postgres(initdb: &Path, postgres: &Path, port: u16) -> Database {
        let dir = tempfile::tempdir().unwrap();
        let user = Uid::effective().is_root().then(|| {
            User::from_name("postgres")
                .unwrap()
                .expect("a postgres user")
        });
        if let Some(user) = &user {
            std::os::unix::fs::chown(dir.path(), Some(user.uid.as_raw()), None).unwrap();
        }
        let as_user = |command: &mut Command| {
            if let Some(user) = &user {
                use std::os::unix::process::CommandExt;
                command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
            }
        };
        let data = dir.path().join("data");
        let mut init = Command::new(initdb);
        init.arg("-D")
            .arg(&data)
            .args(["--auth=trust", "-U", "postgres", "--no-sync"])
            .current_dir(dir.path());
        as_user(&mut init);
        let output = init.output().unwrap();
        assert!(
            output.status.success(),
            "initdb failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // Trust, except that `secret` must give a password (the role need not exist: the
        // server asks anyway, so as not to tell which roles do).
        let hba = "local all all trust\n\
                   host all secret 127.0.0.1/32 scram-sha-256\n\
                   host all all 127.0.0.1/32 trust\n";
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        let log = dir.path().join("stderr.log");
        let mut command = Command::new(postgres);
        command
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .current_dir(dir.path());
        as_user(&mut command);
        // SIGINT is the fast shutdown: the postmaster ends its children, then itself.
        Database::spawn(command, dir, "postgres", log, Signal::SIGINT, port).await
    }

    async fn spawn(
        mut command: Command,
        dir: tempfile::TempDir,
        what: &'static str,
        log: PathBuf,
        stop_signal: Signal,
        port: u16,
    ) -> Database {
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let mut database = Database {
            child: Some(child),
            dir,
            what,
            log,
            stop_signal,
            address,
        };
        let started = Instant::now();
        while TcpStream::connect(address).await.is_err() {
            if let Some(status) = database.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("{what} exited with {status}:\n{}", database.log());
            }
            assert!(
                started.elapsed() < PEER_LIMIT,
                "{what} did not listen on {address}:\n{}",
                database.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        database
    }

    /// A global status counter of a MariaDB server, read with the `mariadb` client over its
    /// socket.
    pub fn mariadb_status(&self, client: &Path, variable: &str) -> u64 {
        let output = Command::new(client)
            .arg(format!(
                "--socket={}",
                self.dir.path().join("mysqld.sock").display()
            ))
            .args(["-uroot", "--batch", "--skip-column-names", "-e"])
            .arg(format!("SHOW GLOBAL STATUS LIKE '{variable}'"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let value = text.split_whitespace().nth(1);
        value
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no {variable} from mariadb: {text}{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            })
    }

    pub fn log(&self) -> String {
        let stderr = self.dir.path().join("stderr.log");
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        if self.log == stderr {
            return log;
        }
        format!(
            "{log}{}",
            std::fs::read_to_string(stderr).unwrap_or_default()
        )
    }

    /// Stops the server and waits until its process is gone, so its port is free.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = kill(Pid::from_raw(child.id() as i32), self.stop_signal);
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > PEER_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not stop:\n{}", self.what, self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.what, self.log());
        }
        self.stop();
    }
}

/// Holds `port` on loopback: accepts connections, writes `answer` (nothing if empty) and keeps
/// them open until aborted. What a database's port sees when another process took it.
pub async fn hold_port(port: u16, answer: &'static [u8]) -> JoinHandle<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(answer).await;
            // Bounded: a check opens one connection per interval.
            if open.len() == 64 {
                open.remove(0);
            }
            open.push(stream);
        }
    })
}

/// nginx (one process) answering every request 200 with `METHOD X-Check-header-value`.
pub struct EchoNginx {
    peer: super::edge::Peer,
    pub address: SocketAddr,
}

impl EchoNginx {
    /// Speaking HTTP/1.1.
    pub async fn start(program: &Path) -> EchoNginx {
        EchoNginx::start_with(program, "").await
    }

    /// Speaking HTTP/2 with prior knowledge (h2c) only.
    pub async fn start_h2c(program: &Path) -> EchoNginx {
        EchoNginx::start_with(program, " http2").await
    }

    async fn start_with(program: &Path, listen_options: &str) -> EchoNginx {
        let dir = tempfile::tempdir().unwrap();
        let address = SocketAddr::from(([127, 0, 0, 1], super::free_port()));
        let d = dir.path().display();
        let config = format!(
            "master_process off;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               access_log {d}/access.log;\n\
               client_body_temp_path {d}/body;\n\
               proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               server {{\n\
                 listen {address}{listen_options};\n\
                 location / {{ return 200 \"$request_method $http_x_check\\n\"; }}\n\
               }}\n\
             }}\n"
        );
        let mut peer = super::edge::start_nginx(program, dir, &config);
        peer.wait_listening(address).await;
        EchoNginx { peer, address }
    }

    /// One line per request nginx answered, in its combined format.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.peer.file("access.log")).unwrap_or_default()
    }
}
