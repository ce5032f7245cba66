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
    autotag: no
    quiet: yes
autotagml:
    auto: no
YAML
export BEETSDIR="$demo_dir"
beet -c "$demo_dir/config.yaml" import -A "$demo_dir/music" > /dev/null
beet -c "$demo_dir/config.yaml" autotag-ml
beet -c "$demo_dir/config.yaml" ls -f '$path: $genres (ml_genre_rock=$ml_genre_rock)'
