//! Login with `rotate_id`, logout with `destroy`, and a protected page.
//! Run: `cargo run -p tessera-examples --bin login`, then log in as alice / wonderland.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tessera_examples::init_tracing();
    let app = tessera_examples::login::app(tessera_examples::secret_from_env_or_dev());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("login listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
