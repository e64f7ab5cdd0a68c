"""localkit-registry: the entry-point registry that every localkit package shares.

One small, standard-library-only distribution, so that every package reads its plugin
groups the same way and raises the same errors: ``except localkit_registry.RegistryError``
(or ``splitnet.RegistryError``, the same class) catches a registry problem whichever
package raised it.

- :class:`Registry` lists a group without importing plugin code, loads an entry on first
  use, reports a broken plugin by distribution without taking the group down, answers an
  unknown name with the closest ones, and refuses a name declared twice.
- :meth:`Registry.create` calls a factory with the consumer's context and the user's
  options as strict keywords: an option the factory does not accept is an
  :class:`OptionError` naming the accepted ones.
- :class:`CutContext` and :class:`HeadContext` are the frozen contexts of the
  ``splitnet.objectives`` and ``splitnet.heads`` contracts, importable without splitnet.

Example:
    >>> from localkit_registry import CutContext
    >>> CutContext(feature_shape=(64, 8, 8), num_classes=10, index=1, num_cuts=3).index
    1
"""

from ._cli_options import parse_option, parse_value
from ._contexts import CutContext, HeadContext
from ._errors import (
    ContractError,
    DuplicateEntryError,
    OptionError,
    PluginLoadError,
    RegistryError,
    UnknownEntryError,
)
from ._options import accepted_options, check_options
from ._registry import HERMETIC_ENV, Entry, Registry, natural_key

__version__ = "0.1.0"

__all__ = [
    "HERMETIC_ENV",
    "ContractError",
    "CutContext",
    "DuplicateEntryError",
    "Entry",
    "HeadContext",
    "OptionError",
    "PluginLoadError",
    "Registry",
    "RegistryError",
    "UnknownEntryError",
    "__version__",
    "accepted_options",
    "check_options",
    "natural_key",
    "parse_option",
    "parse_value",
]
