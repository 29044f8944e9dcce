//! `bench_server KIND PORT`: one server of the load benchmark, KIND one of bare,
//! tessera, tower-sessions (in memory), tessera-redis, tessera-redis-hash, tessera-pg,
//! tower-sessions-redis, tower-sessions-pg (`REDIS_URL`, `DATABASE_URL`). Prints
//! `listening PORT` when ready.

use tessera_bench::network::{self, NetKind};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_default();
    let app = match (name.parse::<tessera_bench::Kind>(), name.parse::<NetKind>()) {
        (Ok(kind), _) => tessera_bench::app(kind),
        (_, Ok(kind)) => match network::app(kind).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("bench_server: {name}: {e}");
                std::process::exit(1);
            }
        },
        (Err(e), Err(_)) => {
            eprintln!("bench_server: {e}");
            std::process::exit(2);
        }
    };
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bench_server: {e}");
            std::process::exit(1);
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    println!("listening {port}");
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("bench_server: {e}");
        std::process::exit(1);
    }
}
