"""Trace readers: request arrivals as numpy arrays, whatever the file format.

Formats, detected from the content (not the file name):

* generic CSV, header `timestamp,input_tokens,output_tokens` (seconds; relative or epoch);
* Azure LLM inference CSV, header `TIMESTAMP,ContextTokens,GeneratedTokens` (wall-clock
  strings such as `2023-11-16 18:17:03.9799600`, read as UTC);
* Mooncake JSONL, one object per line with `timestamp` (ms), `input_length`, `output_length`;
* ServeGen rate curves: a directory of `chunk-<client>-trace.csv` files, or one such file
  (no header: window_start_s, rate, cv, distribution, param1, param2), sampled into arrivals
  by `llmscale.sim.servegen`.

Every trace is returned relative to its first arrival (t = 0). Problems raise
`TraceFormatError(path, line, problem)`: one line naming the file, the line and what is wrong.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from llmscale.errors import TraceFormatError, UserInputError

GENERIC_COLUMNS = ("timestamp", "input_tokens", "output_tokens")
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
MOONCAKE_KEYS = ("timestamp", "input_length", "output_length")


@dataclass(frozen=True)
class Trace:
    name: str
    arrival_seconds: npt.NDArray[np.float64]  # sorted, first = 0
    input_tokens: npt.NDArray[np.int64]
    output_tokens: npt.NDArray[np.int64]
    source_format: str

    def __len__(self) -> int:
        return len(self.arrival_seconds)

    @property
    def duration_seconds(self) -> float:
        return float(self.arrival_seconds[-1]) if len(self) else 0.0

    def cut(self, duration_seconds: float) -> Trace:
        """Only the requests that arrive in the first `duration_seconds`."""
        end = int(np.searchsorted(self.arrival_seconds, duration_seconds, side="left"))
        return Trace(
            self.name,
            self.arrival_seconds[:end],
            self.input_tokens[:end],
            self.output_tokens[:end],
            self.source_format,
        )

    def after(self, start_seconds: float) -> Trace:
        """The requests from `start_seconds` on, with the clock restarted there."""
        first = int(np.searchsorted(self.arrival_seconds, start_seconds, side="left"))
        return Trace(
            self.name,
            self.arrival_seconds[first:] - start_seconds,
            self.input_tokens[first:],
            self.output_tokens[first:],
            self.source_format,
        )

    def compressed(self, rate_scale: float) -> Trace:
        """Inter-arrival times divided by `rate_scale` (so the rate is multiplied by it)."""
        return Trace(
            self.name,
            self.arrival_seconds / rate_scale,
            self.input_tokens,
            self.output_tokens,
            self.source_format,
        )


def check_rate_scale(rate_scale: float) -> float:
    if not (rate_scale > 0 and np.isfinite(rate_scale)):
        raise UserInputError(f"--rate-scale: value {rate_scale!r} is invalid; expected a number > 0")
    return float(rate_scale)


def read_trace(
    path: str | Path,
    *,
    rate_scale: float = 1.0,
    duration_seconds: float | None = None,
    seed: int = 0,
    start_seconds: float = 0.0,
) -> Trace:
    """Read any supported trace; `rate_scale` > 1 multiplies the request rate.

    Request-level traces are time-compressed (a 1-hour trace at rate_scale 4 lasts 15 min);
    ServeGen rate curves keep their clock (diurnal shape) and have their rates multiplied.
    `start_seconds` skips the beginning of the (scaled) trace and restarts the clock there;
    `duration_seconds` then keeps that much of it.
    """
    rate_scale = check_rate_scale(rate_scale)
    if duration_seconds is not None and not duration_seconds > 0:
        raise UserInputError(f"--duration: value {duration_seconds!r} is invalid; expected seconds > 0")
    if not (start_seconds >= 0 and np.isfinite(start_seconds)):
        raise UserInputError(f"--start: value {start_seconds!r} is invalid; expected seconds >= 0")
    file_path = Path(path)
    if not file_path.exists():
        raise UserInputError(f"--trace: file {str(path)!r} does not exist")
    from llmscale.sim import servegen  # local: keeps the reader import light

    if file_path.is_dir() or servegen.looks_like_servegen(file_path):
        return servegen.read_servegen(
            file_path,
            rate_scale=rate_scale,
            duration_seconds=duration_seconds,
            seed=seed,
            start_seconds=start_seconds,
        )
    first_line, first_number = _first_content_line(file_path)
    if first_line.lstrip().startswith("{"):
        trace = _read_mooncake(file_path)
    else:
        header = tuple(cell.strip() for cell in first_line.split(","))
        if set(AZURE_COLUMNS) & set(header):
            trace = _read_csv(file_path, AZURE_COLUMNS, _azure_seconds, "azure")
        elif set(GENERIC_COLUMNS) & set(header):
            trace = _read_csv(file_path, GENERIC_COLUMNS, _number_seconds, "generic")
        else:
            raise TraceFormatError(
                str(path),
                first_number,
                f"unknown header {first_line.strip()[:80]!r}; expected columns {','.join(GENERIC_COLUMNS)} "
                f"(generic), {','.join(AZURE_COLUMNS)} (Azure), Mooncake JSONL or ServeGen chunk-*-trace.csv",
            )
    if rate_scale != 1.0:
        trace = trace.compressed(rate_scale)
    if start_seconds > 0:
        trace = trace.after(start_seconds)
    if duration_seconds is not None:
        trace = trace.cut(duration_seconds)
    return trace


def _first_content_line(path: Path) -> tuple[str, int]:
    try:
        with path.open("r", encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    return line, number
    except UnicodeDecodeError as exc:
        raise TraceFormatError(str(path), None, f"not a text file ({exc.reason})") from exc
    except OSError as exc:
        raise TraceFormatError(str(path), None, f"cannot read: {exc.strerror or exc}") from exc
    raise TraceFormatError(str(path), None, "empty file; expected a header and at least one request")


def _number_seconds(text: str) -> float:
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(text)
    return value


_EPOCH = dt.date(1970, 1, 1)


def _azure_seconds(text: str, _days: dict[str, int] = {}) -> float:  # noqa: B006 (a deliberate memo)
    """`2023-11-16 18:17:03.9799600` -> epoch seconds (UTC). datetime cannot take 7 digits."""
    date_text, _, time_text = text.strip().partition(" ")
    if not time_text:
        date_text, _, time_text = text.strip().partition("T")
    days = _days.get(date_text)
    if days is None:
        days = (dt.date.fromisoformat(date_text) - _EPOCH).days
        _days[date_text] = days
    hours, minutes, seconds = time_text.rstrip("Z").split(":")
    return days * 86400.0 + int(hours) * 3600.0 + int(minutes) * 60.0 + float(seconds)


def _token_count(text: str) -> int:
    value = float(text)
    if not np.isfinite(value) or value != int(value):
        raise ValueError(text)
    return int(value)


def _build(
    path: Path, name: str, times: list[float], inputs: list[int], outputs: list[int], source_format: str
) -> Trace:
    if not times:
        raise TraceFormatError(str(path), None, "no requests; expected at least one data row")
    arrival = np.asarray(times, dtype=np.float64)
    arrival -= arrival[0]
    return Trace(
        name, arrival, np.asarray(inputs, dtype=np.int64), np.asarray(outputs, dtype=np.int64), source_format
    )


def _check_row(
    path: Path, number: int, time: float, previous: float, tokens_in: int, tokens_out: int
) -> None:
    if time < previous:
        raise TraceFormatError(
            str(path),
            number,
            f"timestamp {time:g} is earlier than the previous row's {previous:g}; expected sorted rows",
        )
    if tokens_in < 0 or tokens_out < 0:
        raise TraceFormatError(
            str(path), number, f"negative token count (input {tokens_in}, output {tokens_out}); expected >= 0"
        )


def _read_csv(path: Path, columns: tuple[str, str, str], parse_time: object, source_format: str) -> Trace:
    times: list[float] = []
    inputs: list[int] = []
    outputs: list[int] = []
    previous = -np.inf
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header: list[str] | None = None
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                missing = [column for column in columns if column not in header]
                if missing:
                    raise TraceFormatError(
                        str(path),
                        reader.line_num,
                        f"missing column {missing[0]!r}; expected {','.join(columns)}",
                    )
                time_at, in_at, out_at = (header.index(column) for column in columns)
                continue
            number = reader.line_num
            try:
                time = parse_time(row[time_at])  # type: ignore[operator]
            except (ValueError, IndexError):
                cell = row[time_at] if time_at < len(row) else ""
                raise TraceFormatError(
                    str(path), number, f"{columns[0]} {cell!r} is not a valid time"
                ) from None
            try:
                tokens_in = _token_count(row[in_at])
                tokens_out = _token_count(row[out_at])
            except (ValueError, IndexError):
                raise TraceFormatError(
                    str(path), number, f"{columns[1]}/{columns[2]} must be whole numbers, got {row!r}"[:200]
                ) from None
            _check_row(path, number, float(time), previous, tokens_in, tokens_out)
            previous = float(time)
            times.append(previous)
            inputs.append(tokens_in)
            outputs.append(tokens_out)
    return _build(path, path.name, times, inputs, outputs, source_format)


def _read_mooncake(path: Path) -> Trace:
    times: list[float] = []
    inputs: list[int] = []
    outputs: list[int] = []
    previous = -np.inf
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TraceFormatError(str(path), number, f"malformed JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise TraceFormatError(str(path), number, "expected a JSON object per line")
            missing = [key for key in MOONCAKE_KEYS if key not in record]
            if missing:
                raise TraceFormatError(
                    str(path), number, f"missing field {missing[0]!r}; expected {', '.join(MOONCAKE_KEYS)}"
                )
            try:
                time = _number_seconds(str(record["timestamp"])) / 1000.0
                tokens_in = _token_count(str(record["input_length"]))
                tokens_out = _token_count(str(record["output_length"]))
            except ValueError:
                raise TraceFormatError(
                    str(path), number, "timestamp, input_length and output_length must be numbers"
                ) from None
            _check_row(path, number, time, previous, tokens_in, tokens_out)
            previous = time
            times.append(time)
            inputs.append(tokens_in)
            outputs.append(tokens_out)
    return _build(path, path.name, times, inputs, outputs, "mooncake")
