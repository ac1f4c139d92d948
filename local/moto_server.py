"""moto's server as the local stack runs it: moto itself, plus one fix.

moto's /moto-api/data.json (which the local mailbox and the tests read for sent mail) answers
500 once any multipart upload has happened: every S3 key moto ever made is dumped, and reading
the `status` of a multipart part, or of a key whose bucket is gone, looks that bucket up and
raises. A CSV import's report of more than one part is written that way, so without this fix
the mailbox breaks after a large import. Here such a status reads as None instead.
"""

import sys

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

if __name__ == "__main__":
    sys.exit(main())
