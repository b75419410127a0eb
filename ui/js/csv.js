// A sensor CSV file as a window for POST /predict: a header row, a timestamp column and one column
// per sensor, separated by `,`, `;` or tabs. The rules are those of the endpoint and the sensor feed
// (the same timestamp and label column names, the same messages), so a file reads the same whether
// it is dropped for the feed or tried here. Only what JSON cannot carry is checked here (text and
// empty cells); everything else (sensor names, timestamps, row limits) is the API's to judge.

export const TIMESTAMP_COLUMNS = ["timestamp", "datetime", "time", "date"];
const NOT_READINGS = ["anomaly", "label", "is_anomaly", "changepoint"];
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export class CsvError extends Error {}

/** The delimiter the header uses most: `,` `;` or tab (`,` when it has none). */
export function sniffDelimiter(header) {
  const counts = [",", ";", "\t"].map((d) => [d, header.split(d).length - 1]);
  counts.sort((a, b) => b[1] - a[1]);
  return counts[0][1] ? counts[0][0] : ",";
}

/** Fields of one line; double quotes group a field and "" is a quote, as in RFC 4180. */
export function splitLine(line, delimiter) {
  const fields = [];
  let field = "", quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && field === "") quoted = true;
    else if (c === delimiter) { fields.push(field); field = ""; }
    else field += c;
  }
  fields.push(field);
  return fields;
}

/** { sensors, timestamps (text, epoch seconds, or null), window, timestampColumn, delimiter } of a CSV text; CsvError says what is wrong. */
export function parseSensorCsv(text) {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  // line numbers as an editor shows them (blank lines are skipped, not renumbered)
  const lines = body.split(/\r\n|\n|\r/).map((line, index) => [index + 1, line]).filter(([, line]) => line.trim());
  if (lines.length < 2) throw new CsvError("the CSV window needs a header row and at least one row of readings");
  const delimiter = sniffDelimiter(lines[0][1]);
  const header = splitLine(lines[0][1], delimiter).map((name) => name.trim());
  const lowered = header.map((name) => name.toLowerCase());
  const timeName = TIMESTAMP_COLUMNS.find((name) => lowered.includes(name));
  const timeIndex = timeName === undefined ? -1 : lowered.indexOf(timeName);
  const sensorIndices = header.map((_, i) => i).filter((i) => i !== timeIndex && !NOT_READINGS.includes(lowered[i]));
  if (!sensorIndices.length) throw new CsvError(`the header ${JSON.stringify(header)} names no sensor column`);
  const empty = sensorIndices.find((i) => !header[i]);
  if (empty !== undefined) throw new CsvError(`column ${empty + 1} of the header has no name`);
  const window = [], timestamps = timeIndex >= 0 ? [] : null;
  for (const [number, line] of lines.slice(1)) {
    const record = splitLine(line, delimiter);
    if (record.length !== header.length) {
      throw new CsvError(`CSV line ${number} has ${record.length} fields; the header has ${header.length}`);
    }
    window.push(sensorIndices.map((i) => reading(record[i], number, header[i], delimiter)));
    if (timestamps) timestamps.push(record[timeIndex].trim());
  }
  // a column of plain numbers is epoch seconds, which the API takes as numbers (text must be ISO 8601)
  const times = timestamps && timestamps.every((t) => NUMBER.test(t)) ? timestamps.map(Number) : timestamps;
  return { sensors: sensorIndices.map((i) => header[i]), timestamps: times, window, timestampColumn: timeIndex >= 0 ? header[timeIndex] : null, delimiter };
}

function reading(cell, line, column, delimiter) {
  const text = cell.trim();
  if (NUMBER.test(text)) return Number(text);
  if (!text) throw new CsvError(`CSV line ${line}, column '${column}' is empty; fill or drop the missing reading before sending`);
  if (/^[+-]?(nan|inf|infinity)$/i.test(text)) {
    throw new CsvError(`CSV line ${line}, column '${column}': '${text}' is NaN or infinite; fill or drop it before sending`);
  }
  const hint = delimiter !== "," && /^[+-]?\d+,\d+$/.test(text) ? " (write decimals with a point: 1.5, not 1,5)" : "";
  throw new CsvError(`CSV line ${line}, column '${column}': '${text}' is not a number${hint}`);
}
