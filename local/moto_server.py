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
3. S3 answers UploadPart and CompleteMultipartUpload for an upload id it does not know (an
   aborted upload) with 404 NoSuchUpload; moto raises a KeyError, which reaches the client as
   a 500. The import tells the two apart (it writes its report again when the upload is gone),
   so the local S3 answers as S3 does.
"""

import functools
import sys

import jsonpath_ng.ext
from moto.s3 import models
from moto.s3.exceptions import MissingBucket, NoSuchUpload
from moto.server import main

_status = models.FakeKey.status


def _status_or_none(key):
    try:
        return _status.fget(key)
    except MissingBucket:
        return None


models.FakeKey.status = property(_status_or_none, _status.fset)


def _known_upload(method):
    @functools.wraps(method)
    def checked(self, bucket_name, multipart_id, *args, **kwargs):
        if multipart_id not in self.get_bucket(bucket_name).multiparts:
            raise NoSuchUpload(upload_id=multipart_id)
        return method(self, bucket_name, multipart_id, *args, **kwargs)

    return checked


models.S3Backend.upload_part = _known_upload(models.S3Backend.upload_part)
models.S3Backend.complete_multipart_upload = _known_upload(
    models.S3Backend.complete_multipart_upload
)

# moto.events.utils imports `parse` from jsonpath_ng.ext at each call, so it gets this one.
jsonpath_ng.ext.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.ext.parse)

if __name__ == "__main__":
    sys.exit(main())
