#!/usr/bin/env bash
# Builds Trellis's container images with the local Docker engine only (no registry is reachable):
# each image is FROM scratch, holding a binary built here plus the shared libraries it links
# (copied from this machine, found with ldd), or Debian's static busybox for the client.
#
#   scripts/images.sh TRELLIS_BINARY SAMPLES_DIR
#
# Images: trellis, trellis-hello-instance, trellis-hello-lambda, trellis-client (sh, wget,
# nslookup). All carry the label trellis.managed=true.
set -euo pipefail
cd "$(dirname "$0")/.."

TRELLIS_BIN=${1:?usage: scripts/images.sh TRELLIS_BINARY SAMPLES_DIR}
SAMPLES=${2:?usage: scripts/images.sh TRELLIS_BINARY SAMPLES_DIR}
WORK=target/images
TAG=${IMAGE_TAG:-latest}

if ! docker info >/dev/null 2>&1; then
    echo "images: the Docker engine is not reachable (is dockerd running? DOCKER_HOST? permission on /var/run/docker.sock?)" >&2
    exit 1
fi

# rootfs_for NAME BINARY: a build context whose rootfs/ holds BINARY as /NAME (stripped) and
# every shared library it needs, at the same paths as on this machine.
rootfs_for() {
    local name=$1 binary=$2 dir=$WORK/$1
    rm -rf "$dir"
    mkdir -p "$dir/rootfs/tmp" "$dir/rootfs/etc"
    objcopy --strip-debug "$binary" "$dir/rootfs/$name"
    ldd "$binary" | grep -o '/[^ ]*' | while read -r lib; do
        mkdir -p "$dir/rootfs$(dirname "$lib")"
        cp -L "$lib" "$dir/rootfs$lib"
    done
    echo "root:x:0:0:root:/:/$name" > "$dir/rootfs/etc/passwd"
    echo "$dir"
}

build() { # NAME CONTEXT DOCKERFILE-TEXT
    printf '%s\n' "$3" > "$2/Dockerfile"
    docker build -q --label trellis.managed=true -t "$1:$TAG" "$2" >/dev/null
    echo "images: built $1:$TAG"
}

ctx=$(rootfs_for trellis "$TRELLIS_BIN")
build trellis "$ctx" 'FROM scratch
COPY rootfs/ /
ENV RUST_LOG=info
ENTRYPOINT ["/trellis"]
CMD ["up", "-f", "/etc/trellis/trellis.yaml", "--bind", "0.0.0.0", "--state-dir", "/tmp/trellis"]'

ctx=$(rootfs_for hello-instance "$SAMPLES/hello-instance")
build trellis-hello-instance "$ctx" 'FROM scratch
COPY rootfs/ /
EXPOSE 8081
ENTRYPOINT ["/hello-instance", "--port", "8081", "--bind", "0.0.0.0"]'

# A Lambda container image: the lambda_runtime binary as /bootstrap, started like Lambda's
# provided runtimes start it.
ctx=$(rootfs_for bootstrap "$SAMPLES/hello-lambda")
build trellis-hello-lambda "$ctx" 'FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/bootstrap"]'

busybox=/bin/busybox
if ! [ -x "$busybox" ] || ! "$busybox" --list | grep -qx nslookup; then
    if [ -x /usr/bin/apt-get ]; then
        echo "images: installing Debian's busybox-static for the client image"
        (apt-get install -y -q busybox-static >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q busybox-static >/dev/null; })
    fi
fi
[ -x "$busybox" ] || { echo "images: /bin/busybox (Debian's busybox-static) is needed for the client image" >&2; exit 1; }
dir=$WORK/client
rm -rf "$dir" && mkdir -p "$dir/rootfs/bin" "$dir/rootfs/tmp" "$dir/rootfs/etc"
cp "$busybox" "$dir/rootfs/bin/busybox"
for tool in sh wget nslookup cat echo sleep seq sort uniq grep cut wc head tr; do
    ln -sf busybox "$dir/rootfs/bin/$tool"
done
build trellis-client "$dir" 'FROM scratch
COPY rootfs/ /
ENV PATH=/bin
CMD ["sh"]'
