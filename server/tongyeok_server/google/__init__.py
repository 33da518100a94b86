"""What the Google Cloud engines share: the credential and its renewal, channels, and what a status means.

Speech-to-Text (``recognition/google_*``) and Text-to-Speech
(``synthesis/google_*``) both call Google over ``grpc.aio`` with the same
Application Default Credentials, the same TLS options (``--google-ca-file``)
and the same rules for a failed call; those live here once (``auth``,
``status``), and each engine keeps only its own API's policy.
"""
