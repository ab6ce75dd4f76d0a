//! `functions`: Lambda-style functions (wasm, process, container) that LAMBDA target groups
//! and `trellis invoke` name.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Ctx;
use super::section::{Item, NameRule, NameSyntax, Section};
use crate::decode::{Fields, item, list, one_of, string};
use crate::model::*;
use crate::yaml::{Node, Value};

const FUNCTIONS: Section = Section {
    key: "functions",
    keys: &[
        "name",
        "runtime",
        "code",
        "command",
        "image",
        "build",
        "timeout",
        "memorySize",
        "environment",
        "concurrency",
        "provisioned",
        "idleTimeout",
    ],
    required: None,
    name: NameRule {
        what: "function name",
        syntax: NameSyntax::Function,
    },
};

impl Ctx<'_> {
    pub(super) fn functions(&mut self, top: &Fields<'_>) -> Vec<Function> {
        self.section(top, &FUNCTIONS, Self::function)
    }

    fn function(&mut self, Item { f, at, name }: Item<'_>) -> Function {
        let runtime = match f
            .require(self.problems, "runtime", "one of wasm, process, container")
            .and_then(|n| {
                one_of(
                    self.problems,
                    n,
                    &f.loc("runtime"),
                    &["wasm", "process", "container"],
                )
            })
            .as_deref()
        {
            Some("process") => FunctionRuntime::Process,
            Some("container") => FunctionRuntime::Container,
            _ => FunctionRuntime::Wasm,
        };
        let code = self.str_field(&f, "code").map(PathBuf::from);
        let image = self.str_field(&f, "image");
        let build = self.str_field(&f, "build").map(PathBuf::from);
        let command_loc = f.loc("command");
        let command: Vec<String> = match f.get("command") {
            Some(Node {
                value: Value::Scalar { text, .. },
                ..
            }) => text.split_whitespace().map(str::to_string).collect(),
            other => list(self.problems, other, &command_loc)
                .iter()
                .enumerate()
                .filter_map(|(j, n)| string(self.problems, n, &item(&command_loc, j, n)))
                .collect(),
        };
        let missing = match runtime {
            FunctionRuntime::Wasm if code.is_none() => Some((
                "a wasm function needs \"code\"",
                "the path of a .wasm module or component, e.g. code: sample-functions/hello.wasm",
            )),
            FunctionRuntime::Process if command.is_empty() => Some((
                "a process function needs \"command\"",
                "the program and its arguments, e.g. command: [target/release/my-lambda]",
            )),
            FunctionRuntime::Container if image.is_some() == build.is_some() => Some((
                "a container function needs exactly one of \"image\" and \"build\"",
                "image: a local image tag; build: a directory with a Dockerfile",
            )),
            _ => None,
        };
        if let Some((message, hint)) = missing {
            self.problems.add(&at, message, Some(hint.into()));
        }
        let timeout_seconds = self
            .int_field(&f, "timeout", 1, 900, "a function timeout in seconds")
            .unwrap_or(3) as u32;
        let memory_size_mb = self
            .int_field(&f, "memorySize", 128, 10240, "memorySize in MB")
            .unwrap_or(128) as u32;
        let concurrency = self
            .int_field(&f, "concurrency", 1, 1000, "concurrency")
            .unwrap_or(10) as u32;
        let provisioned = self
            .int_field(&f, "provisioned", 0, 1000, "a count of environments")
            .unwrap_or(0) as u32;
        let idle_timeout_seconds = self
            .int_field(&f, "idleTimeout", 1, 86_400, "an idle timeout in seconds")
            .unwrap_or(600) as u32;
        self.pool_keys(&f, runtime, provisioned, concurrency);
        let env_loc = f.loc("environment");
        let mut environment = BTreeMap::new();
        if let Some(env) = f.get("environment") {
            if let Value::Map(entries) = &env.value {
                for (k, v) in entries {
                    if let Some(value) =
                        string(self.problems, v, &env_loc.field(k.key_text(), v.pos))
                    {
                        environment.insert(k.key_text().to_string(), value);
                    }
                }
            } else {
                self.problems.add(
                    &env_loc,
                    format!(
                        "expected a mapping of variable names to values, found {}",
                        env.kind()
                    ),
                    None,
                );
            }
        }
        let arn = format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region, self.account_id
        );
        Function {
            name,
            arn,
            runtime,
            code,
            command,
            image,
            build,
            timeout_seconds,
            memory_size_mb,
            environment,
            concurrency,
            provisioned,
            idle_timeout_seconds,
            at,
        }
    }

    /// `provisioned` and `idleTimeout` describe a pool of environments, which only process and
    /// container functions have (a wasm function instantiates per invocation), and a pool never
    /// holds more than `concurrency` environments.
    fn pool_keys(
        &mut self,
        f: &Fields<'_>,
        runtime: FunctionRuntime,
        provisioned: u32,
        concurrency: u32,
    ) {
        if runtime == FunctionRuntime::Wasm {
            for key in ["provisioned", "idleTimeout"] {
                if f.get(key).is_some() {
                    self.problems.add(
                        &f.loc(key),
                        format!("\"{key}\" applies to process and container functions only"),
                        Some("a wasm function gets a fresh instance of its compiled module per invocation; there is no environment to keep warm".into()),
                    );
                }
            }
        }
        if f.get("provisioned").is_some() && provisioned > concurrency {
            self.problems.add(
                &f.loc("provisioned"),
                format!("provisioned ({provisioned}) is more than concurrency ({concurrency})"),
                Some("at most `concurrency` environments exist at once; raise concurrency or lower provisioned".into()),
            );
        }
    }
}
