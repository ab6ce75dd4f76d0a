//! A container function's image: an `image:` that must exist in the engine (no registry is
//! reachable), or a `build:` directory built through the engine (the context tarred in memory,
//! `.dockerignore` honoured) and tagged `trellis-fn-<name>:<content hash>`, so an unchanged
//! directory reuses its image, across restarts too.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptions, ListImagesOptions, RemoveImageOptions};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use trellis_runtime::log;

use super::engine::{engine_error, is_status, label_filter};
use super::launcher::LineBuffer;
use super::{ContainerError, labels};
use crate::one_line;

/// The file the engine builds from.
const DOCKERFILE: &str = "Dockerfile";

/// Lines of build output kept for a failure's message.
const OUTPUT_TAIL: usize = 60;

/// Where a container function's image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A tag or id that exists in the engine.
    Image(String),
    /// A directory with a Dockerfile.
    Build(PathBuf),
}

impl ImageSource {
    pub fn from_config(config: &trellis_config::Function) -> Result<ImageSource, ContainerError> {
        match (&config.image, &config.build) {
            (Some(image), None) => Ok(ImageSource::Image(image.clone())),
            (None, Some(dir)) => Ok(ImageSource::Build(dir.clone())),
            _ => Err(ContainerError::NoImage(config.name.clone())),
        }
    }
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSource::Image(image) => write!(f, "image {image}"),
            ImageSource::Build(dir) => write!(f, "build directory {}", dir.display()),
        }
    }
}

/// Resolves a function's image for each launch, building when the directory changed.
pub(super) struct Images {
    docker: Docker,
    function: String,
    source: ImageSource,
    /// The content hash of the image last resolved (for `build:`); held while resolving, so
    /// that concurrent launches build once.
    resolved: tokio::sync::Mutex<Option<String>>,
}

impl Images {
    pub(super) fn new(docker: Docker, function: &str, source: ImageSource) -> Images {
        Images {
            docker,
            function: function.to_owned(),
            source,
            resolved: tokio::sync::Mutex::new(None),
        }
    }

    pub(super) fn source(&self) -> &ImageSource {
        &self.source
    }

    /// The image reference to create a container from, building it first if needed.
    pub(super) async fn resolve(&self) -> Result<String, ContainerError> {
        let dir = match &self.source {
            ImageSource::Image(image) => {
                return match self.docker.inspect_image(image).await {
                    Ok(_) => Ok(image.clone()),
                    Err(e) if is_status(&e, 404) => {
                        Err(ContainerError::ImageNotFound(image.clone()))
                    }
                    Err(e) => Err(engine_error(&format!("cannot inspect image {image}"), &e)),
                };
            }
            ImageSource::Build(dir) => dir.clone(),
        };
        let mut resolved = self.resolved.lock().await;
        let context = read_context(dir.clone(), false).await?;
        let tag = tag_for(&self.function, &context.hash);
        match self.docker.inspect_image(&tag).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {
                // Tarred now, from what is there now: its hash names the image.
                let context = read_context(dir.clone(), true).await?;
                let tag = tag_for(&self.function, &context.hash);
                self.build(&dir, &tag, &context).await?;
                self.prune(&tag).await;
                *resolved = Some(context.hash);
                return Ok(tag);
            }
            Err(e) => return Err(engine_error(&format!("cannot inspect image {tag}"), &e)),
        }
        *resolved = Some(context.hash);
        Ok(tag)
    }

    /// A cheap fingerprint of a `build:` directory (names, sizes, modes, mtimes); `None` for an
    /// `image:` or an unreadable directory.
    pub(super) fn fingerprint(&self) -> Option<u64> {
        let ImageSource::Build(dir) = &self.source else {
            return None;
        };
        let entries = walk(dir).ok()?;
        let mut hasher = DefaultHasher::new();
        for entry in &entries {
            entry.rel.hash(&mut hasher);
            if let Ok(meta) = std::fs::symlink_metadata(&entry.path) {
                meta.len().hash(&mut hasher);
                meta.permissions().mode().hash(&mut hasher);
                meta.modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .hash(&mut hasher);
            }
        }
        Some(hasher.finish())
    }

    /// Whether the `build:` directory's content differs from the image last resolved (false
    /// before any: nothing runs an old image then).
    pub(super) async fn content_changed(&self) -> bool {
        let ImageSource::Build(dir) = &self.source else {
            return false;
        };
        let Some(last) = self.resolved.lock().await.clone() else {
            return false;
        };
        match read_context(dir.clone(), false).await {
            Ok(context) => context.hash != last,
            // Unreadable now (mid-rewrite): the next launch reports it.
            Err(_) => false,
        }
    }

    async fn build(&self, dir: &Path, tag: &str, context: &Context) -> Result<(), ContainerError> {
        let started = Instant::now();
        log::line(
            &self.function,
            &format!("building image {tag} from {}", dir.display()),
        );
        let options = BuildImageOptions {
            dockerfile: DOCKERFILE.into(),
            t: Some(tag.to_owned()),
            rm: true,
            forcerm: true,
            labels: Some(HashMap::from([
                (labels::MANAGED.to_owned(), "true".to_owned()),
                (labels::FUNCTION.to_owned(), self.function.clone()),
                (labels::CONTENT_HASH.to_owned(), context.hash.clone()),
            ])),
            ..Default::default()
        };
        let tar = bollard::body_full(context.tar.clone().into());
        let mut output = BuildOutput::new(|line: &str| log::line(&self.function, line));
        let mut failure: Option<String> = None;
        let mut stream = self.docker.build_image(options, None, Some(tar));
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream.as_deref() {
                        output.push(text);
                    } else if let Some(status) = info.status.as_deref() {
                        output.push_line(status);
                    }
                    if let Some(message) = info.error_detail.and_then(|d| d.message) {
                        failure = Some(message);
                    }
                }
                Err(e) => {
                    failure = Some(one_line(&e));
                    break;
                }
            }
        }
        let (tail, cut) = output.finish();
        if failure.is_none() && self.docker.inspect_image(tag).await.is_err() {
            failure = Some("the engine reported no error, but the image is missing".into());
        }
        if let Some(message) = failure {
            let shown = tail.join("\n");
            return Err(ContainerError::Build(format!(
                "building {} for function {} failed: {}\n--- build output{} ---\n{}",
                dir.display(),
                self.function,
                message.trim(),
                if cut { " (last lines)" } else { "" },
                if shown.is_empty() { "(none)" } else { &shown },
            )));
        }
        log::line(
            &self.function,
            &format!(
                "built image {tag} in {:.1} s",
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(())
    }

    /// Removes this function's older built images (best effort: one still used by a container
    /// being retired stays, and goes at the next rebuild).
    async fn prune(&self, keep: &str) {
        let filters = label_filter(&[
            (labels::MANAGED, "true"),
            (labels::FUNCTION, self.function.as_str()),
        ]);
        let Ok(images) = self
            .docker
            .list_images(Some(ListImagesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
        else {
            return;
        };
        for image in images {
            if image.repo_tags.iter().any(|t| t == keep) {
                continue;
            }
            let _ = self
                .docker
                .remove_image(&image.id, None::<RemoveImageOptions>, None)
                .await;
        }
    }
}

/// A build's output on its way to the function log, line by line as the engine sends it (a
/// build can take minutes; its steps show while it runs). The engine's messages are chunks, not
/// lines, so lines are reassembled; blank ones are skipped. The last [`OUTPUT_TAIL`] lines are
/// kept for a failure's message.
struct BuildOutput<F: FnMut(&str)> {
    log: F,
    pending: LineBuffer,
    tail: VecDeque<String>,
    /// Whether earlier lines fell out of `tail`.
    cut: bool,
}

impl<F: FnMut(&str)> BuildOutput<F> {
    fn new(log: F) -> BuildOutput<F> {
        BuildOutput {
            log,
            pending: LineBuffer::default(),
            tail: VecDeque::with_capacity(OUTPUT_TAIL),
            cut: false,
        }
    }

    /// Part of the build's output stream.
    fn push(&mut self, text: &str) {
        let BuildOutput {
            log,
            pending,
            tail,
            cut,
        } = self;
        pending.push(text.as_bytes(), |line| keep(log, tail, cut, line));
    }

    /// A status message: a whole line of its own.
    fn push_line(&mut self, text: &str) {
        self.push(text);
        self.push("\n");
    }

    /// Logs an unfinished last line; returns the tail and whether it is cut.
    fn finish(mut self) -> (Vec<String>, bool) {
        let BuildOutput {
            log,
            pending,
            tail,
            cut,
        } = &mut self;
        pending.finish(|line| keep(log, tail, cut, line));
        (self.tail.into(), self.cut)
    }
}

fn keep(log: &mut impl FnMut(&str), tail: &mut VecDeque<String>, cut: &mut bool, line: &str) {
    if line.trim().is_empty() {
        return;
    }
    log(line);
    if tail.len() == OUTPUT_TAIL {
        tail.pop_front();
        *cut = true;
    }
    tail.push_back(line.to_owned());
}

/// `trellis-fn-<name>:<hash>`, the name lowercased and limited to what a repository name
/// allows.
fn tag_for(function: &str, hash: &str) -> String {
    let name: String = function
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.' | '_') => c,
            _ => '-',
        })
        .collect();
    format!("trellis-fn-{}:{hash}", name.trim_matches(['-', '.', '_']))
}

/// A build context: its tar and content hash.
struct Context {
    hash: String,
    tar: Vec<u8>,
}

async fn read_context(dir: PathBuf, tar: bool) -> Result<Context, ContainerError> {
    tokio::task::spawn_blocking(move || context_of(&dir, tar))
        .await
        .map_err(|e| ContainerError::Build(format!("reading the build context failed: {e}")))?
        .map_err(ContainerError::Build)
}

/// Hashes what the image depends on in `dir` (minus what `.dockerignore` excludes): paths,
/// executable bits, file contents and link targets, not mtimes; and tars it if `with_tar`.
fn context_of(dir: &Path, with_tar: bool) -> Result<Context, String> {
    let entries = walk(dir)?;
    if !entries.iter().any(|e| e.rel == DOCKERFILE) {
        return Err(format!(
            "no {DOCKERFILE} in {} (a `build:` directory needs one)",
            dir.display()
        ));
    }
    let mut sha = Sha256::new();
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    let unreadable =
        |path: &Path, e: std::io::Error| format!("cannot read {}: {e}", path.display());
    for entry in &entries {
        let meta =
            std::fs::symlink_metadata(&entry.path).map_err(|e| unreadable(&entry.path, e))?;
        sha.update(entry.rel.as_bytes());
        sha.update([0]);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&entry.path).map_err(|e| unreadable(&entry.path, e))?;
            sha.update(b"l");
            sha.update(target.as_os_str().as_encoded_bytes());
        } else if meta.is_dir() {
            sha.update(b"d");
        } else {
            let content = std::fs::read(&entry.path).map_err(|e| unreadable(&entry.path, e))?;
            sha.update(if meta.permissions().mode() & 0o111 != 0 {
                b"x"
            } else {
                b"f"
            });
            sha.update((content.len() as u64).to_le_bytes());
            sha.update(&content);
        }
        sha.update([0]);
        if with_tar {
            tar.append_path_with_name(&entry.path, &entry.rel)
                .map_err(|e| unreadable(&entry.path, e))?;
        }
    }
    let tar = tar
        .into_inner()
        .map_err(|e| format!("cannot tar {}: {e}", dir.display()))?;
    let digest = sha.finalize();
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Ok(Context { hash, tar })
}

/// A file, directory or link of a build context.
struct Entry {
    /// Relative to the context, `/`-separated.
    rel: String,
    path: PathBuf,
}

/// The context's entries, sorted, minus what `.dockerignore` excludes (the Dockerfile and
/// `.dockerignore` are always sent, as the engine wants them).
fn walk(dir: &Path) -> Result<Vec<Entry>, String> {
    let meta = std::fs::metadata(dir).map_err(|e| {
        format!(
            "build directory {} cannot be read: {e}",
            std::path::absolute(dir)
                .unwrap_or_else(|_| dir.to_path_buf())
                .display()
        )
    })?;
    if !meta.is_dir() {
        return Err(format!("build: {} is not a directory", dir.display()));
    }
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => Ignore::parse(&text),
        Err(_) => Ignore::default(),
    };
    let mut entries = Vec::new();
    walk_into(dir, "", &ignore, &mut entries)?;
    entries.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(entries)
}

fn walk_into(
    dir: &Path,
    prefix: &str,
    ignore: &Ignore,
    out: &mut Vec<Entry>,
) -> Result<(), String> {
    let read = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for item in read {
        let item = item.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let name = item.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = item.path();
        let is_dir = item.file_type().is_ok_and(|t| t.is_dir());
        let always = rel == DOCKERFILE || rel == ".dockerignore";
        let excluded = !always && ignore.excludes(&rel);
        if is_dir {
            // An excluded directory is skipped whole unless a `!` pattern may re-include
            // something inside it (so a big `target/` costs nothing).
            if excluded && !ignore.has_negations() {
                continue;
            }
            if !excluded {
                out.push(Entry {
                    rel: rel.clone(),
                    path: path.clone(),
                });
            }
            walk_into(&path, &rel, ignore, out)?;
        } else if !excluded {
            out.push(Entry { rel, path });
        }
    }
    Ok(())
}

/// `.dockerignore` patterns: `*`, `?` and `**` globs on `/`-separated paths, `!` to
/// re-include, `#` comments; the last matching pattern decides, and a pattern that matches a
/// directory excludes everything in it.
#[derive(Debug, Default)]
struct Ignore {
    patterns: Vec<(bool, Vec<String>)>,
}

impl Ignore {
    fn parse(text: &str) -> Ignore {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let (negate, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let segments = pattern
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .map(str::to_owned)
                    .collect();
                (negate, segments)
            })
            .filter(|(_, segments): &(bool, Vec<String>)| !segments.is_empty())
            .collect();
        Ignore { patterns }
    }

    fn has_negations(&self) -> bool {
        self.patterns.iter().any(|(negate, _)| *negate)
    }

    fn excludes(&self, rel: &str) -> bool {
        let path: Vec<&str> = rel.split('/').collect();
        let mut excluded = false;
        for (negate, pattern) in &self.patterns {
            let hit = (1..=path.len()).any(|n| glob(pattern, &path[..n]));
            if hit {
                excluded = !negate;
            }
        }
        excluded
    }
}

/// Whether `path` (segments) matches `pattern` (segments; `**` is any number of segments).
fn glob(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| glob(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((segment, more)) => segment_matches(first, segment) && glob(rest, more),
            None => false,
        },
    }
}

/// One path segment against a pattern with `*` and `?` (neither crosses a `/`).
fn segment_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_patterns() {
        let ignore = Ignore::parse(
            "# build output\ntarget\n*.log\n/docs/**/*.md\n!docs/keep.md\nsecret?.txt\n",
        );
        assert!(ignore.excludes("target"));
        assert!(ignore.excludes("target/release/app"));
        assert!(ignore.excludes("build.log"));
        assert!(!ignore.excludes("logs/build.log"), "* does not cross /");
        assert!(ignore.excludes("docs/a/b/c.md"));
        assert!(ignore.excludes("docs/c.md"));
        assert!(!ignore.excludes("docs/keep.md"));
        assert!(ignore.excludes("secret1.txt"));
        assert!(!ignore.excludes("secret12.txt"));
        assert!(!ignore.excludes("src/main.rs"));
        assert!(segment_matches("a*b*c", "aXXbYc"));
        assert!(!segment_matches("a*b", "aXXbc"));
    }

    #[test]
    fn build_output_is_logged_by_whole_lines_and_its_tail_kept() {
        let mut logged = Vec::new();
        let mut output = BuildOutput::new(|line: &str| logged.push(line.to_owned()));
        output.push("Step 1/2 : FROM scratch");
        output.push("\n");
        output.push_line("Pulling fs layer");
        output.push(" ---> Running\n\n  \npart");
        output.push("ial\nunfinished");
        let (tail, cut) = output.finish();
        let expected = [
            "Step 1/2 : FROM scratch",
            "Pulling fs layer",
            " ---> Running",
            "partial",
            "unfinished",
        ];
        assert_eq!(tail, expected);
        assert!(!cut);
        assert_eq!(logged, expected);

        let mut count = 0;
        let mut output = BuildOutput::new(|_: &str| count += 1);
        for n in 0..OUTPUT_TAIL + 5 {
            output.push(&format!("line {n}\n"));
        }
        let (tail, cut) = output.finish();
        assert!(cut);
        assert_eq!(tail.len(), OUTPUT_TAIL);
        assert_eq!(tail[0], "line 5");
        assert_eq!(count, OUTPUT_TAIL + 5);
    }

    #[test]
    fn tags_are_valid_repository_names() {
        assert_eq!(tag_for("Hello_Fn", "00ff"), "trellis-fn-hello_fn:00ff");
        assert_eq!(tag_for("a b", "1"), "trellis-fn-a-b:1");
    }

    #[test]
    fn the_content_hash_follows_content_and_dockerignore_not_mtimes() {
        let dir = std::env::temp_dir().join(format!("trellis-ctx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("target")).unwrap();
        std::fs::write(dir.join(DOCKERFILE), "FROM scratch\n").unwrap();
        std::fs::write(dir.join("app"), "v1").unwrap();
        std::fs::write(dir.join(".dockerignore"), "target\n").unwrap();
        std::fs::write(dir.join("target/big"), "ignored").unwrap();
        let first = context_of(&dir, true).unwrap();
        std::fs::write(dir.join("target/big"), "ignored, changed").unwrap();
        std::fs::write(dir.join("app"), "v1").unwrap();
        assert_eq!(context_of(&dir, true).unwrap().hash, first.hash);
        std::fs::write(dir.join("app"), "v2").unwrap();
        let second = context_of(&dir, true).unwrap();
        assert_ne!(second.hash, first.hash);
        let mut archive = tar::Archive::new(&second.tar[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![".dockerignore", DOCKERFILE, "app"]);
        std::fs::remove_file(dir.join(DOCKERFILE)).unwrap();
        let error = context_of(&dir, false).err().unwrap();
        assert!(error.contains("no Dockerfile"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
