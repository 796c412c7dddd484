// Numbers, durations and times as people read them.

const numberFormat = new Intl.NumberFormat(undefined);

export function count(n) {
  return typeof n === 'number' && Number.isFinite(n) ? numberFormat.format(n) : '—';
}

export function bytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** 1234 → "1.2 s", 90000 → "1 min 30 s", 7200000 → "2 h". */
export function duration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min${Math.round(s % 60) ? ` ${Math.round(s % 60)} s` : ''}`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs} h${m % 60 ? ` ${m % 60} min` : ''}`;
  const days = Math.floor(hrs / 24);
  if (days < 730) return `${days} d`;
  return `${Math.round(days / 365)} y`;
}

/** A time as "14:03:12" today, else "2024-05-01 14:03". */
export function time(value) {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value ?? '—');
  const now = new Date();
  const pad = (n) => String(n).padStart(2, '0');
  const hms = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  if (date.toDateString() === now.toDateString()) return hms;
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${hms.slice(0, 5)}`;
}

/** "3 min ago" */
export function ago(value) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return '—';
  const ms = Date.now() - date.getTime();
  return ms < 0 ? 'just now' : `${duration(ms)} ago`;
}

/** The purpose text of an ODPS/ODCS description, which is an object or a string. */
export function describe(description) {
  if (!description) return '';
  if (typeof description === 'string') return description;
  if (typeof description === 'object') return String(description.purpose ?? description.usage ?? '');
  return String(description);
}
