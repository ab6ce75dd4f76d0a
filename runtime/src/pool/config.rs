//! What a pool knows about the function it runs, and the environment variables each of its
//! execution environments gets.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// The default for [`PoolConfig::init_timeout`]: Lambda's init phase limit.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default for [`PoolConfig::idle_timeout`].
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Everything the pool needs to know about the function it runs.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`, log prefix).
    pub name: String,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub arn: String,
    /// `AWS_REGION` and `AWS_DEFAULT_REGION`.
    pub region: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` and the REPORT line's `Memory Size`.
    pub memory_size_mb: u32,
    /// At most this many environments run at once (reserved concurrency).
    pub concurrency: u32,
    /// How long a new environment may take from launch to its first `/next` before it is
    /// killed and the invocation waiting for it fails; without it, a runtime that hangs in init
    /// would hold a concurrency slot forever.
    pub init_timeout: Duration,
    /// Environments kept alive once [`Pool::provision`] is called (Lambda's provisioned
    /// concurrency); at most `concurrency`.
    pub provisioned: u32,
    /// An environment with no invocation for this long is stopped (down to `provisioned`), so
    /// a burst does not leave containers and processes running all day.
    pub idle_timeout: Duration,
    /// The function's own environment variables.
    pub environment: BTreeMap<String, String>,
    /// `_HANDLER`. Custom runtimes mostly ignore it; Lambda always sets it.
    pub handler: String,
    /// `LAMBDA_TASK_ROOT`: where the function's code lives.
    pub task_root: String,
    /// `AWS_EXECUTION_ENV`. Lambda leaves it unset for OS-only (`provided`) runtimes, which is
    /// what a process function is, so the default is `None`.
    pub execution_env: Option<String>,
    /// The address each environment's Runtime API endpoint listens on (port 0: any free port).
    /// Loopback by default; containers need an address they can reach.
    pub bind: IpAddr,
    /// The host name given to environments in `AWS_LAMBDA_RUNTIME_API` when it differs from
    /// `bind` (`host.docker.internal`, a bridge gateway). `None`: the bind address itself, or
    /// loopback when binding to all interfaces.
    pub advertise_host: Option<String>,
}

impl PoolConfig {
    /// The pool settings for a configured function, with Lambda's defaults for the rest.
    pub fn new(function: &trellis_config::Function, region: &str) -> PoolConfig {
        PoolConfig {
            name: function.name.clone(),
            arn: function.arn.clone(),
            region: region.to_owned(),
            memory_size_mb: function.memory_size_mb,
            concurrency: function.concurrency.max(1),
            init_timeout: INIT_TIMEOUT,
            provisioned: function.provisioned.min(function.concurrency.max(1)),
            idle_timeout: Duration::from_secs(u64::from(function.idle_timeout_seconds)),
            environment: function.environment.clone(),
            handler: "bootstrap".to_owned(),
            task_root: "/var/task".to_owned(),
            execution_env: None,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            advertise_host: None,
        }
    }

    /// The environment variables of one execution environment, in the order to apply them
    /// (later entries win). Variables Lambda lets users override (`TZ`, `LANG`) come first, then
    /// the function's own, then the reserved ones Lambda does not let a function change, so a
    /// stray `AWS_LAMBDA_RUNTIME_API` in the config cannot point a runtime elsewhere.
    /// `provisioned`: the environment is started ahead of demand
    /// (`AWS_LAMBDA_INITIALIZATION_TYPE`).
    pub fn environment_for(
        &self,
        runtime_api: &str,
        log_stream: &str,
        provisioned: bool,
    ) -> Vec<(String, String)> {
        let initialization_type = if provisioned {
            "provisioned-concurrency"
        } else {
            "on-demand"
        };
        let mut env: Vec<(String, String)> = vec![
            ("TZ".into(), ":UTC".into()),
            ("LANG".into(), "en_US.UTF-8".into()),
        ];
        env.extend(self.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
        let reserved = [
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
            ("AWS_LAMBDA_FUNCTION_NAME", self.name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.memory_size_mb.to_string(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.name),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.to_owned()),
            (
                "AWS_LAMBDA_INITIALIZATION_TYPE",
                initialization_type.to_owned(),
            ),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("LAMBDA_TASK_ROOT", self.task_root.clone()),
            ("_HANDLER", self.handler.clone()),
        ];
        env.extend(reserved.into_iter().map(|(k, v)| (k.to_owned(), v)));
        if let Some(exec) = &self.execution_env {
            env.push(("AWS_EXECUTION_ENV".into(), exec.clone()));
        }
        env
    }

    /// `host:port` for `AWS_LAMBDA_RUNTIME_API`, given the port an environment's listener got.
    pub(super) fn runtime_api(&self, port: u16) -> String {
        match (&self.advertise_host, self.bind) {
            (Some(host), _) => format!("{host}:{port}"),
            (None, ip) if ip.is_unspecified() => format!("127.0.0.1:{port}"),
            (None, IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
            (None, IpAddr::V4(ip)) => format!("{ip}:{port}"),
        }
    }
}
