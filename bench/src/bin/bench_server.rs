//! `bench_server bare|tessera|tower-sessions PORT`: one server of the load benchmark.
//! Prints `listening PORT` when ready.

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let kind = match args
        .next()
        .unwrap_or_default()
        .parse::<tessera_bench::Kind>()
    {
        Ok(k) => k,
        Err(e) => {
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
    if let Err(e) = axum::serve(listener, tessera_bench::app(kind)).await {
        eprintln!("bench_server: {e}");
        std::process::exit(1);
    }
}
