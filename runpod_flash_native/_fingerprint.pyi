import os
from collections.abc import Iterable

class SourceChangedError(RuntimeError): ...

def compute_source_fingerprint(
    project_dir: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]]
) -> str: ...
