"""The project's exceptions. Logic modules raise these; one interceptor
(services.common.grpc_errors) turns each into a gRPC status, so servicers hold
no try/except of their own.

AceError
├── InvalidInput        a request field breaks a rule     -> INVALID_ARGUMENT
├── NotFound            a named thing does not exist      -> NOT_FOUND
├── AlreadyExists       a named thing exists already      -> ALREADY_EXISTS
├── FailedPrecondition  the system is not in a state to   -> FAILED_PRECONDITION
├── ResourceExhausted   a bound would be exceeded         -> RESOURCE_EXHAUSTED
└── Unavailable         a dependency cannot be reached    -> UNAVAILABLE
"""


class AceError(Exception):
    """Base of every error a request can be answered with."""


class InvalidInput(AceError):
    pass


class NotFound(AceError):
    pass


class AlreadyExists(AceError):
    pass


class FailedPrecondition(AceError):
    pass


class ResourceExhausted(AceError):
    pass


class Unavailable(AceError):
    pass
