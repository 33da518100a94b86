"""Registering the Interpreter and Transcripts services with request decoding that cannot fail loudly.

The generated ``add_InterpreterServicer_to_server`` decodes requests with
``FromString``; bytes that are not the request message make gRPC log a
traceback ("Exception deserializing request!") and answer UNKNOWN (or
INTERNAL), so any client could fill the server's log and learn nothing from
the status. Here each request is decoded by a function that returns an
``Undecodable`` marker instead of raising; the servicer answers it with
INVALID_ARGUMENT and a message a person can act on, and logs nothing above
DEBUG. Apart from the decoders the registration is the generated one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.empty_pb2 import Empty
from google.protobuf.message import Message

from tongyeok_client.proto import expenses_pb2 as epb
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import transcripts_pb2 as tpb
from tongyeok_server.errors import ServiceError, invalid_argument

# grpc.aio ends a request stream the same way when the caller half-closes and
# when it cancels; the cancel surfaces a few milliseconds later. A half-close
# waits this long for it before it counts as the caller's end (Interpret's
# feeder, the resume relay). It delays only the last final of a stream; 50 ms
# was too short on a busy 2-core machine (about once in 10 full test runs).
HALF_CLOSE_SETTLE_S = 0.2

M = TypeVar("M", bound=Message)

SERVICE = "tongyeok.v1.Interpreter"


@dataclass(frozen=True)
class Undecodable:
    """A request whose bytes are not the message the method takes."""

    type_name: str
    size: int

    def error(self, which: str) -> ServiceError:
        """INVALID_ARGUMENT for ``which`` ("the request", "message 3")."""
        return invalid_argument(
            f"{which} ({self.size} bytes) is not a valid {self.type_name}: the bytes do not decode as that protobuf "
            "message; build requests from protos/tongyeok/v1/interpreter.proto (or use grpcurl with reflection)"
        )


def decoder(message_type: type[M]) -> Callable[[bytes], M | Undecodable]:
    """``message_type.FromString`` that returns ``Undecodable`` instead of raising."""
    name = message_type.DESCRIPTOR.full_name

    def decode(data: bytes) -> M | Undecodable:
        try:
            return message_type.FromString(data)
        except Exception:  # DecodeError, or whatever the runtime raises for hostile bytes
            return Undecodable(name, len(data))

    return decode


def add_interpreter(servicer: Any, server: grpc.aio.Server) -> None:
    """Register ``servicer``'s Interpret, TranslateText and ListLanguages on ``server``."""
    handlers = {
        "Interpret": grpc.stream_stream_rpc_method_handler(
            servicer.Interpret,
            request_deserializer=decoder(pb.InterpretRequest),
            response_serializer=pb.InterpretResponse.SerializeToString,
        ),
        "TranslateText": grpc.unary_stream_rpc_method_handler(
            servicer.TranslateText,
            request_deserializer=decoder(pb.TranslateTextRequest),
            response_serializer=pb.TranslateTextResponse.SerializeToString,
        ),
        "ListLanguages": grpc.unary_unary_rpc_method_handler(
            servicer.ListLanguages,
            request_deserializer=decoder(pb.ListLanguagesRequest),
            response_serializer=pb.ListLanguagesResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)  # type: ignore[attr-defined]


TRANSCRIPTS_SERVICE = "tongyeok.v1.Transcripts"


def add_transcripts(servicer: Any, server: grpc.aio.Server) -> None:
    """Register the Transcripts servicer's four methods on ``server``, with the same forgiving decoders."""
    methods: dict[str, tuple[type[Message], type[Message]]] = {
        "GetSession": (tpb.GetSessionRequest, tpb.Session),
        "ListSessions": (tpb.ListSessionsRequest, tpb.ListSessionsResponse),
        "DeleteSession": (tpb.DeleteSessionRequest, Empty),
        "ExportSession": (tpb.ExportSessionRequest, tpb.ExportSessionResponse),
    }
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=decoder(request),
            response_serializer=response.SerializeToString,
        )
        for name, (request, response) in methods.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(TRANSCRIPTS_SERVICE, handlers),))
    server.add_registered_method_handlers(TRANSCRIPTS_SERVICE, handlers)  # type: ignore[attr-defined]


EXPENSES_SERVICE = "tongyeok.v1.Expenses"


def add_expenses(servicer: Any, server: grpc.aio.Server) -> None:
    """Register the Expenses servicer's methods on ``server``, with the same forgiving decoders."""
    handlers = {
        "ScanReceipt": grpc.stream_unary_rpc_method_handler(
            servicer.ScanReceipt,
            request_deserializer=decoder(epb.ScanReceiptRequest),
            response_serializer=epb.Expense.SerializeToString,
        ),
        "GetReceiptImage": grpc.unary_stream_rpc_method_handler(
            servicer.GetReceiptImage,
            request_deserializer=decoder(epb.GetReceiptImageRequest),
            response_serializer=epb.ReceiptImageChunk.SerializeToString,
        ),
        "ExportReport": grpc.unary_stream_rpc_method_handler(
            servicer.ExportReport,
            request_deserializer=decoder(epb.ExportReportRequest),
            response_serializer=epb.ExportReportResponse.SerializeToString,
        ),
    }
    unary: dict[str, tuple[type[Message], type[Message]]] = {
        "ListExpenses": (epb.ListExpensesRequest, epb.ListExpensesResponse),
        "GetExpense": (epb.GetExpenseRequest, epb.Expense),
        "UpdateExpense": (epb.UpdateExpenseRequest, epb.Expense),
        "DeleteExpense": (epb.DeleteExpenseRequest, Empty),
    }
    for name, (request, response) in unary.items():
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=decoder(request),
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(EXPENSES_SERVICE, handlers),))
    server.add_registered_method_handlers(EXPENSES_SERVICE, handlers)  # type: ignore[attr-defined]
