"""Method adapters (one small module per method family): importing this package registers every method (cheaply: heavy imports are lazy)."""
from . import classical  # noqa: F401
from . import u2net  # noqa: F401,E402
from . import modnet  # noqa: F401,E402
from . import bgmv2  # noqa: F401,E402
from . import dim  # noqa: F401,E402
from . import selfie  # noqa: F401,E402
from . import pipelines  # noqa: F401,E402
from . import sim  # noqa: F401,E402
from . import shm  # noqa: F401,E402
from . import bgmv1  # noqa: F401,E402  (after shm: its mask-method choice lists the automatic methods registered so far)
from . import vitmatte  # noqa: F401,E402  (transformers, imported only when it runs)
from . import sam_pipeline  # noqa: F401,E402  (after every trimap method: its 'refine' choice lists them)
from . import feathering  # noqa: F401,E402  (after bgmv1, as the card-only entries: not offered as its mask method)
from . import unavailable  # noqa: F401,E402  (card-only entries: MMNet, FDMPA, HAttMatting)
