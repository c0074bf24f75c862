pub use placeholder::*;
mod placeholder {
    #[derive(Debug, Clone, clap::Args)]
    pub struct SimulateArgs {}
    #[derive(Debug)]
    pub struct Summary;
    impl std::fmt::Display for Summary {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("")
        }
    }
    pub async fn run(
        _a: SimulateArgs,
        _c: &crate::config::Config,
        _t: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Summary> {
        Ok(Summary)
    }
}
