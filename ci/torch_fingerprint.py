"""Prints a fingerprint of the torch installed for this Python: its version, where it lives, and a
digest of the path, size and modification time of every file its install record lists.
ci/setup.sh and ci/install_check.sh compare it before and after installing mx_dcn: any change means the
install replaced, upgraded or touched torch. torch is not imported (found by its metadata only).

    python ci/torch_fingerprint.py            # one line: version, location, digest, file count
"""
import hashlib
import importlib.metadata
import os
import sys


def fingerprint() -> str:
    try:
        dist = importlib.metadata.distribution("torch")
    except importlib.metadata.PackageNotFoundError:
        return "torch: not installed"
    package = os.path.join(str(dist.locate_file("")), "torch")
    digest, count = hashlib.sha256(), 0
    for entry in sorted(dist.files or [], key=str):  # every file its RECORD lists, the metadata included
        if "__pycache__" in entry.parts:  # Python writes these on import
            continue
        path = str(entry.locate())
        st = os.stat(path) if os.path.exists(path) else None
        digest.update(f"{entry}\0{st.st_size if st else -1}\0{st.st_mtime_ns if st else -1}\n".encode())
        count += 1
    return f"torch {dist.version} at {package}: {count} files, digest {digest.hexdigest()[:16]}"


if __name__ == "__main__":
    print(fingerprint())
    sys.exit(0)
