"""``python -m pipelines.adopt TREE``: adopt a rendered template tree (answers as JSON on stdin).

The entry point ``mlops template update`` runs to render a template version with that
version's own adoption code. It lives at this path in every version of the template: a
repository adopted before ``pipelines/`` had subpackages runs this command against newer
versions, so it must keep working wherever the adoption code itself moves
(``pipelines.template.adopt``).
"""

import sys

from pipelines.template.adopt import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
