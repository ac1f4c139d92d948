"""moto's server as the local stack runs it: moto itself, plus two fixes.

1. moto's /moto-api/data.json (which the local mailbox and the tests read for sent mail)
   answers 500 once any multipart upload has happened: every S3 key moto ever made is dumped,
   and reading the `status` of a multipart part, or of a key whose bucket is gone, looks that
   bucket up and raises. A CSV import's report of more than one part is written that way, so
   without this fix the mailbox breaks after a large import. Such a status reads as None here.
2. For every event and every rule target, moto's EventBridge parses the target's JSONPath
   input paths afresh, and jsonpath-ng rebuilds its lexer on each parse: about ten
   milliseconds of CPU per event, which made moto, not the code under test, the bottleneck of
   a large CSV import (one lifecycle event per row). Parses are cached here; a parsed path is
   an immutable expression, so reusing it changes nothing else.
"""

import functools
import sys

import jsonpath_ng.ext
from moto.s3 import models
from moto.s3.exceptions import MissingBucket
from moto.server import main

_status = models.FakeKey.status


def _status_or_none(key):
    try:
        return _status.fget(key)
    except MissingBucket:
        return None


models.FakeKey.status = property(_status_or_none, _status.fset)

# moto.events.utils imports `parse` from jsonpath_ng.ext at each call, so it gets this one.
jsonpath_ng.ext.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.ext.parse)

if __name__ == "__main__":
    sys.exit(main())
