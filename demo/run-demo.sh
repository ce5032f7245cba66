#!/usr/bin/env bash
# Build a small beets library from the 29 real clips of the PyPI package
# immich-memories-music (MIT) and tag it with `beet autotag-ml`.
# Usage: demo/run-demo.sh [DEMO_DIR]   (default: ./demo-library)
set -euo pipefail
demo_dir=$(realpath -m "${1:-demo-library}")
clips=$(python -c "import immich_memories_music, pathlib; print(pathlib.Path(immich_memories_music.__file__).parent / 'tracks')")
mkdir -p "$demo_dir/music"
cp -r "$clips"/. "$demo_dir/music/"
cat > "$demo_dir/config.yaml" <<YAML
directory: $demo_dir/music
library: $demo_dir/library.db
plugins: autotagml
import:
    copy: no
    write: yes
    quiet: yes
    duplicate_action: keep   # the clips have no title/artist tags: all look alike to beets
autotagml:
    auto: no
YAML
export BEETSDIR="$demo_dir"
rm -f "$demo_dir/library.db" "$demo_dir"/autotagml.sqlite*  # start afresh on every run
# -A: take the files as they are; -s: singletons (the clips carry no album tags).
beet -c "$demo_dir/config.yaml" import -A -s "$demo_dir/music" > /dev/null
beet -c "$demo_dir/config.yaml" autotag-ml
beet -c "$demo_dir/config.yaml" ls -f '$path: genres $genres | mood $mood | instruments %ifdef{ml_instrument,$ml_instrument,-} | voice %ifdef{ml_voice,$ml_voice,-} | energy %ifdef{ml_energy,$ml_energy,-}'
