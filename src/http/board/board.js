// The operators' board (docs/contract.md §10.4): plain JavaScript, no build step, no library.
// Everything shown comes from /v1 and reaches the DOM as text (textContent, text nodes), never
// as markup. All view state is in the URL (#/?jurisdiction=…, #/alert/ID, #/stations?date=…) so
// a link can be shared; times are shown in [display].timezone with the zone named.
'use strict';
(() => {
  const TOKEN_KEY = 'fraud-sla.token';
  const LANG_KEY = 'fraud-sla.lang';
  const RESOLVED_KEY = 'fraud-sla.resolved';
  /** `all`: every open stage, soonest deadline first (with the default 1 h / 2 h / 6 h policy,
   *  an alert's stages are due hours after it arrives: a window alone would hide them). */
  const WINDOWS = ['all', '10m', '15m', '30m', '1h', '2h', '6h', '24h'];
  const DEFAULT_WINDOW = 'all';
  /** Without a window, an open stage this close to its deadline is marked at risk. */
  const AT_RISK_MS = 1800000;
  const LIST_LIMIT = 200;
  const COUNT_LIMIT = 1000;
  /** Requests a list may take to fill its page (see `apiList`). */
  const LIST_PAGES = 8;
  const RISKS = ['high', 'medium', 'low'];
  /** Lists are re-read this often even with no event (slower while the stream is up). */
  const POLL_LIVE_MS = 15000;
  const POLL_DOWN_MS = 5000;
  const DEBOUNCE_MS = 200;
  /** Events re-read a list at most this often (a busy center changes alerts many times a second). */
  const EVENT_INTERVAL_MS = 700;

  const I18N = {
    zh: {
      'app.title': '反诈预警 SLA 值班台',
      'nav.duty': '值班看板',
      'nav.stations': '站点统计',
      'goto.placeholder': '预警编号，如 GA-620102-…',
      'goto.open': '查看',
      'lang.switch': 'EN',
      'lang.switch.title': 'Switch to English',
      logout: '退出',
      'conn.connecting': '正在连接…',
      'conn.live': '实时',
      'conn.down': '正在重新连接…',
      'scope.all': '全部辖区',
      'scope.of': '范围：{name}（{j}）',
      'login.title': '请输入访问令牌',
      'login.token': '访问令牌',
      'login.hint': '令牌仅保存在本浏览器标签页的会话中。',
      'login.submit': '登录',
      'login.wrong': '令牌错误或已失效，请重新输入。',
      'f.jurisdiction': '辖区（前缀）',
      'f.jurisdiction.ph': '如 6201',
      'f.risk': '风险等级',
      'f.stage': '环节',
      'f.window': '到期时限',
      'f.all': '全部',
      'f.reset': '清除筛选',
      'f.zone': '时间均为 {tz}',
      'risk.high': '高',
      'risk.medium': '中',
      'risk.low': '低',
      'sum.all': '全部环节',
      'sum.open': '进行中',
      'sum.pending': '未超时',
      'sum.atrisk': '临期',
      'sum.overdue': '超时',
      'sum.today': '今日',
      'sum.ontime': '按时',
      'sum.late': '超时完成',
      'sum.breached': '超时',
      'overdue.title': '已超时',
      'atrisk.title': '临期（{w}内到期）',
      'open.title': '未超时环节（按到期先后）',
      'empty.open': '没有未超时的环节',
      'win.all': '全部',
      'resolved.title': '最近解除',
      'resolved.empty': '本次会话尚未收到解除通知',
      'empty.overdue': '没有超时环节',
      'empty.atrisk': '{w}内没有到期的环节',
      'empty.partial': '已查的部分中没有；列表尚未查完，请缩小筛选范围（辖区、风险、环节）',
      'empty.stations': '该日没有数据',
      more: '仅显示前 {n} 条',
      'col.left': '剩余',
      'col.over': '已超时',
      'col.deadline': '时限',
      'col.stage': '环节',
      'col.alert': '预警编号',
      'col.jurisdiction': '辖区',
      'col.risk': '风险',
      'col.warned': '提醒',
      'col.level': '升级',
      'col.notified': '升级 · 已通知',
      'col.time': '时间',
      'col.what': '事件',
      'col.officer': '民警',
      'col.outcome': '结果',
      'col.event': '事件编号',
      'col.status': '状态',
      'col.satisfied': '完成时间',
      'col.result': '时效',
      'col.levels': '已触发升级',
      'col.resolved': '已解除',
      'col.rate': '按时率',
      warned: '已提醒',
      'due.now': '已到期',
      'level.n': '{n}级',
      'alert.title': '预警详情',
      'alert.back': '← 返回值班看板',
      'alert.issued': '下发时间',
      'alert.jurisdiction': '辖区',
      'alert.risk': '风险等级',
      'alert.channel': '来源渠道',
      'alert.fraud': '诈骗类型',
      'alert.status': '状态',
      'alert.closed': '办结时间',
      'alert.policy': '策略版本',
      'alert.stages': '处置环节',
      'alert.timeline': '时间线',
      'alert.notfound': '未找到该预警',
      'alert.notfound.hint': '编号有误，或不在本令牌的辖区范围内。',
      'status.open': '处置中',
      'status.closed': '已办结',
      'stage.open': '进行中',
      'stage.satisfied': '已完成',
      'stage.cancelled': '已取消',
      ontime: '按时',
      late: '超时完成',
      yes: '是',
      'st.title': '站点统计',
      'st.date': '日期',
      'st.total': '全部辖区',
      'st.prev': '前一天',
      'st.next': '后一天',
      'st.today': '今天',
      'st.note': '按 {tz} 的自然日统计',
      'err.bad': '请求无效：{m}',
      'err.unavailable': '服务暂不可用：{m}',
      'err.notimpl': '服务端尚未提供该接口：{m}',
      'err.network': '无法连接服务器',
      'err.other': '请求失败（{s}）：{m}',
      'err.stale': '（显示的是 {t} 的数据）',
      'unit.d': '天',
      'win.m': '{n}分钟',
      'win.h': '{n}小时',
      'win.d': '{n}天',
      'what.alert': '预警下发',
      'what.acknowledged': '签收',
      'what.visited': '已上门',
      'what.met': '已见面',
      'what.feedback': '已反馈',
      'what.closed': '中心办结',
      'what.warning': '临期提醒',
      'what.breach': '超时升级',
      'what.resolved': '升级解除',
      'outcome.dissuaded': '劝阻成功',
      'outcome.defrauded': '已被骗',
      'outcome.unreachable': '无法联系',
      'outcome.false_positive': '误报',
      'outcome.refused': '拒绝配合',
      'who.assigned_officer': '责任民警',
      'who.station_duty_officer': '派出所值班员',
      'who.station_chief': '派出所所长',
      'who.sub_bureau_command': '分局指挥室',
      'fraud.impersonating_police': '冒充公检法',
      'fraud.investment_scam': '虚假投资理财',
      'fraud.online_loan': '虚假网络贷款',
      'fraud.fake_customer_service': '冒充客服',
      'fraud.part_time_job_scam': '刷单返利',
    },
    en: {
      'app.title': 'Anti-fraud SLA duty board',
      'nav.duty': 'Duty board',
      'nav.stations': 'Stations',
      'goto.placeholder': 'Alert id, e.g. GA-620102-…',
      'goto.open': 'Open',
      'lang.switch': '中文',
      'lang.switch.title': '切换到中文',
      logout: 'Sign out',
      'conn.connecting': 'connecting…',
      'conn.live': 'live',
      'conn.down': 'reconnecting…',
      'scope.all': 'All jurisdictions',
      'scope.of': 'Scope: {name} ({j})',
      'login.title': 'Access token required',
      'login.token': 'Access token',
      'login.hint': 'The token is kept for this browser tab’s session only.',
      'login.submit': 'Sign in',
      'login.wrong': 'Wrong or expired token; please enter it again.',
      'f.jurisdiction': 'Jurisdiction (prefix)',
      'f.jurisdiction.ph': 'e.g. 6201',
      'f.risk': 'Risk',
      'f.stage': 'Stage',
      'f.window': 'Due within',
      'f.all': 'All',
      'f.reset': 'Clear filters',
      'f.zone': 'Times in {tz}',
      'risk.high': 'High',
      'risk.medium': 'Medium',
      'risk.low': 'Low',
      'sum.all': 'All stages',
      'sum.open': 'Open',
      'sum.pending': 'Pending',
      'sum.atrisk': 'At risk',
      'sum.overdue': 'Overdue',
      'sum.today': 'Today',
      'sum.ontime': 'on time',
      'sum.late': 'late',
      'sum.breached': 'breached',
      'overdue.title': 'Overdue',
      'atrisk.title': 'At risk (due within {w})',
      'open.title': 'Open stages (soonest deadline first)',
      'empty.open': 'No open stage',
      'win.all': 'all',
      'resolved.title': 'Recently resolved',
      'resolved.empty': 'No resolution received this session',
      'empty.overdue': 'Nothing overdue',
      'empty.atrisk': 'Nothing due within {w}',
      'empty.partial': 'None in the part searched so far; the list is not finished: narrow the filters (jurisdiction, risk, stage)',
      'empty.stations': 'No data for this day',
      more: 'Showing the first {n}',
      'col.left': 'Time left',
      'col.over': 'Overdue by',
      'col.deadline': 'Deadline',
      'col.stage': 'Stage',
      'col.alert': 'Alert',
      'col.jurisdiction': 'Jurisdiction',
      'col.risk': 'Risk',
      'col.warned': 'Warned',
      'col.level': 'Level',
      'col.notified': 'Level · notified',
      'col.time': 'Time',
      'col.what': 'Event',
      'col.officer': 'Officer',
      'col.outcome': 'Outcome',
      'col.event': 'Event id',
      'col.status': 'Status',
      'col.satisfied': 'Done at',
      'col.result': 'Result',
      'col.levels': 'Levels fired',
      'col.resolved': 'Resolved',
      'col.rate': 'On-time rate',
      warned: 'warned',
      'due.now': 'due now',
      'level.n': 'L{n}',
      'alert.title': 'Alert',
      'alert.back': '← Back to the duty board',
      'alert.issued': 'Issued',
      'alert.jurisdiction': 'Jurisdiction',
      'alert.risk': 'Risk',
      'alert.channel': 'Channel',
      'alert.fraud': 'Fraud type',
      'alert.status': 'Status',
      'alert.closed': 'Closed',
      'alert.policy': 'Policy version',
      'alert.stages': 'Stages',
      'alert.timeline': 'Timeline',
      'alert.notfound': 'Unknown alert',
      'alert.notfound.hint': 'The id is wrong, or outside this token’s jurisdictions.',
      'status.open': 'open',
      'status.closed': 'closed',
      'stage.open': 'open',
      'stage.satisfied': 'done',
      'stage.cancelled': 'cancelled',
      ontime: 'on time',
      late: 'late',
      yes: 'yes',
      'st.title': 'Stations',
      'st.date': 'Date',
      'st.total': 'All jurisdictions',
      'st.prev': 'Previous day',
      'st.next': 'Next day',
      'st.today': 'Today',
      'st.note': 'Days in {tz}',
      'err.bad': 'Bad request: {m}',
      'err.unavailable': 'Service unavailable: {m}',
      'err.notimpl': 'Not offered by the server yet: {m}',
      'err.network': 'Cannot reach the server',
      'err.other': 'Request failed ({s}): {m}',
      'err.stale': ' (showing the data of {t})',
      'unit.d': 'd',
      'win.m': '{n} min',
      'win.h': '{n} h',
      'win.d': '{n} d',
      'what.alert': 'alert issued',
      'what.acknowledged': 'signed for',
      'what.visited': 'visited',
      'what.met': 'met',
      'what.feedback': 'feedback',
      'what.closed': 'closed by the center',
      'what.warning': 'warning',
      'what.breach': 'breach',
      'what.resolved': 'resolved',
      'outcome.dissuaded': 'dissuaded',
      'outcome.defrauded': 'defrauded',
      'outcome.unreachable': 'unreachable',
      'outcome.false_positive': 'false positive',
      'outcome.refused': 'refused',
      'who.assigned_officer': 'assigned officer',
      'who.station_duty_officer': 'station duty officer',
      'who.station_chief': 'station chief',
      'who.sub_bureau_command': 'sub-bureau command',
      'fraud.impersonating_police': 'impersonating police',
      'fraud.investment_scam': 'investment scam',
      'fraud.online_loan': 'online loan',
      'fraud.fake_customer_service': 'fake customer service',
      'fraud.part_time_job_scam': 'part-time job scam',
    },
  };

  const S = {
    // The user's choice, else the configured language the page was served in.
    lang: storedLang() || (document.documentElement.lang === 'en' ? 'en' : 'zh'),
    token: sessionStorage.getItem(TOKEN_KEY),
    display: null,
    /** Server clock minus this clock, when they differ by more than the Date header's second. */
    skew: 0,
    view: null,
    lastDuty: '#/',
    /** `alert:stage` → {level, notify} from the escalations received this session. */
    notified: new Map(),
    resolved: loadResolved(),
    streamGen: 0,
    streamAbort: null,
    lastEventId: null,
    conn: 'connecting',
    firstRender: false,
  };

  // ---------- small helpers ----------

  function storedLang() {
    const v = localStorage.getItem(LANG_KEY);
    return v === 'zh' || v === 'en' ? v : null;
  }

  function loadResolved() {
    try {
      const v = JSON.parse(sessionStorage.getItem(RESOLVED_KEY) || '[]');
      return Array.isArray(v) ? v : [];
    } catch {
      return [];
    }
  }

  function t(key, vars) {
    let s = I18N[S.lang][key] ?? I18N.zh[key] ?? key;
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.split('{' + k + '}').join(String(v));
    return s;
  }

  /** A translated name if there is one, else the raw value (unknown values stay readable). */
  function tr(prefix, value) {
    if (value == null || value === '') return '—';
    const key = prefix + '.' + value;
    return I18N[S.lang][key] ?? value;
  }

  function $(sel, root) {
    return (root || document).querySelector(sel);
  }

  /** Builds an element; string children become text nodes (never parsed as markup). */
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v == null || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
        else if (k === 'value') el.value = v;
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  /** Replaces an element's children, leaving out the absent ones. */
  function fill(el, ...kids) {
    el.replaceChildren(...kids.flat().filter((k) => k != null && k !== false));
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const now = () => Date.now() + S.skew;
  const tz = () => (S.display && S.display.timezone) || 'Asia/Shanghai';

  function stageLabel(stage) {
    const l = S.display && S.display.labels && S.display.labels[stage];
    return (l && l[S.lang === 'en' ? 'en' : 'zh']) || stage;
  }

  function stages() {
    return (S.display && S.display.stages) || [];
  }

  // ---------- time ----------

  /** A formatter of `options` in the display zone (UTC if the browser does not know the
   *  zone), made once a zone. */
  function zoneFormat(cache, options) {
    const zone = tz();
    let f = cache.get(zone);
    if (!f) {
      try {
        f = new Intl.DateTimeFormat('en-US', { ...options, timeZone: zone });
      } catch {
        f = new Intl.DateTimeFormat('en-US', { ...options, timeZone: 'UTC' });
      }
      cache.set(zone, f);
    }
    return f;
  }

  const partsFmt = new Map();
  function parts(ms) {
    const f = zoneFormat(partsFmt, {
      hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
    const p = {};
    for (const x of f.formatToParts(new Date(ms))) p[x.type] = x.value;
    return p;
  }
  const ymd = (p) => `${p.year}-${p.month}-${p.day}`;
  const hms = (p) => `${p.hour}:${p.minute}:${p.second}`;
  const fmtDateTime = (ms) => {
    const p = parts(ms);
    return `${ymd(p)} ${hms(p)}`;
  };
  const today = () => ymd(parts(now()));

  /** The display zone's offset from UTC at `ms`, e.g. `+08:00` (what a reader of a row needs
   *  to place the time; the zone's name is in the filter bar, the column heads and tooltips).
   *  Worked out from the local time's parts, not `timeZoneName: 'longOffset'`, which browsers
   *  on Chromium before 95 refuse with a RangeError. */
  function fmtOffset(ms) {
    const p = parts(ms);
    const local = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour % 24, +p.minute, +p.second);
    const minutes = Math.round((local - Math.floor(ms / 1000) * 1000) / 60000);
    const a = Math.abs(minutes);
    const p2 = (n) => String(n).padStart(2, '0');
    return `${minutes < 0 ? '-' : '+'}${p2(Math.floor(a / 60))}:${p2(a % 60)}`;
  }

  /** The time of day with the zone's offset, and the date when it is not today (in the display
   *  zone): `10:04:31 +08:00`, `11-23 10:04:31 +08:00`. */
  function fmtWhen(ms) {
    const p = parts(ms);
    const time = `${hms(p)} ${fmtOffset(ms)}`;
    return ymd(p) === today() ? time : `${p.month}-${p.day} ${time}`;
  }

  /** A time: local (`full`: with its date, `zone`: and the zone's name), UTC in its tooltip. */
  function timeEl(iso, mode) {
    if (!iso) return h('span', { class: 'muted' }, '—');
    const ms = Date.parse(iso);
    if (!Number.isFinite(ms)) return h('span', null, String(iso));
    return h(
      'time',
      { datetime: iso, title: `${fmtDateTime(ms)} (${tz()}) · UTC ${iso}` },
      mode === 'zone' ? `${fmtDateTime(ms)} (${tz()})` : mode === 'full' ? `${fmtDateTime(ms)} ${fmtOffset(ms)}` : fmtWhen(ms),
    );
  }

  function fmtDur(ms) {
    let s = Math.max(0, Math.floor(Math.abs(ms) / 1000));
    const d = Math.floor(s / 86400);
    s -= d * 86400;
    const hh = Math.floor(s / 3600);
    const mm = Math.floor((s % 3600) / 60);
    const ss = s % 60;
    const p2 = (n) => String(n).padStart(2, '0');
    if (d > 0) return `${d}${t('unit.d')} ${p2(hh)}:${p2(mm)}:${p2(ss)}`;
    if (hh > 0) return `${hh}:${p2(mm)}:${p2(ss)}`;
    return `${p2(mm)}:${p2(ss)}`;
  }

  /** Milliseconds of a simple humantime duration (`30m`, `1h30m`), or null. */
  function parseDur(s) {
    if (!s || !/^(\d+(ms|s|m|h|d)\s*)+$/.test(s)) return null;
    const unit = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 };
    let total = 0;
    for (const m of s.matchAll(/(\d+)(ms|s|m|h|d)/g)) total += Number(m[1]) * unit[m[2]];
    return total;
  }

  function fmtWindow(w) {
    if (w === 'all') return t('win.all');
    const m = /^(\d+)([mhd])$/.exec(w || '');
    return m ? t('win.' + m[2], { n: m[1] }) : String(w);
  }

  function noteSkew(res) {
    const d = Date.parse(res.headers.get('date') || '');
    if (!Number.isFinite(d)) return;
    const off = d + 500 - Date.now();
    S.skew = Math.abs(off) > 2000 ? off : 0;
  }

  // ---------- API ----------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function describe(e) {
    if (!(e instanceof ApiError)) return t('err.other', { s: '-', m: String(e && e.message) });
    if (e.status === 0) return t('err.network');
    if (e.status === 400) return t('err.bad', { m: e.message });
    if (e.status === 501) return t('err.notimpl', { m: e.message });
    if (e.status === 503) return t('err.unavailable', { m: e.message });
    return t('err.other', { s: e.status, m: e.message });
  }

  async function api(path) {
    const headers = { Accept: 'application/json' };
    if (S.token) headers.Authorization = 'Bearer ' + S.token;
    let res;
    try {
      res = await fetch(path, { headers, cache: 'no-store' });
    } catch {
      throw new ApiError(0, t('err.network'));
    }
    noteSkew(res);
    if (res.status === 401) {
      needLogin();
      throw new ApiError(401, 'unauthorized');
    }
    let body = null;
    try {
      body = await res.json();
    } catch {
      body = null;
    }
    if (!res.ok) {
      const msg = body && typeof body.error === 'string' ? body.error : res.statusText || 'HTTP ' + res.status;
      throw new ApiError(res.status, msg);
    }
    return body;
  }

  /** Up to `want` items of a list (`v1/open`, `v1/overdue`), following `next_cursor` for at most
   *  `LIST_PAGES` requests: with a filter the server examines a bounded part of its index a
   *  request, so a page may hold fewer items than asked, or none, and not be the end. */
  async function apiList(path, params, want) {
    let page = await api(path + query({ ...params, limit: want }));
    const items = [...(page.items || [])];
    const alerts = [...(page.alerts || [])];
    for (let n = 1; page.next_cursor && items.length < want && n < LIST_PAGES; n++) {
      page = await api(path + query({ ...params, limit: want - items.length, cursor: page.next_cursor }));
      items.push(...(page.items || []));
      alerts.push(...(page.alerts || []));
    }
    return { ...page, items, alerts };
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, v);
    const s = q.toString();
    return s ? '?' + s : '';
  }

  // ---------- page chrome ----------

  function banner(text, info) {
    const b = $('#banner');
    if (!text) {
      b.hidden = true;
      b.textContent = '';
      return;
    }
    b.textContent = text;
    b.className = info ? 'banner info' : 'banner';
    b.hidden = false;
  }

  function applyLang() {
    document.documentElement.lang = S.lang === 'en' ? 'en' : 'zh-CN';
    for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
    for (const el of document.querySelectorAll('[data-i18n-aria]')) el.setAttribute('aria-label', t(el.dataset.i18nAria));
    const lb = $('#lang');
    lb.textContent = t('lang.switch');
    lb.title = t('lang.switch.title');
    lb.lang = S.lang === 'en' ? 'zh-CN' : 'en';
    setConn(S.conn);
    const msg = $('#login-msg');
    if (!msg.hidden) msg.textContent = t('login.wrong');
    renderScope();
    tickClock();
    updateTitle();
  }

  function setLang(lang) {
    S.lang = lang;
    localStorage.setItem(LANG_KEY, lang);
    applyLang();
    if (S.view) S.view.rerender();
  }

  function setConn(state) {
    S.conn = state;
    const c = $('#conn');
    c.className = 'conn ' + state;
    c.textContent = t('conn.' + state);
    c.dataset.state = state;
  }

  function renderScope() {
    const s = $('#scope');
    const sc = S.display && S.display.scope;
    if (!S.display) {
      s.textContent = '';
      return;
    }
    s.textContent = sc && sc.name ? t('scope.of', { name: sc.name, j: (sc.jurisdictions || []).join(', ') }) : t('scope.all');
    s.title = s.textContent;
  }

  function tickClock() {
    const c = $('#clock');
    const ms = now();
    c.textContent = `${hms(parts(ms))} (${tz()})`;
    c.title = `${fmtDateTime(ms)} (${tz()})`;
  }

  let overdueCount = 0;
  function updateTitle() {
    document.title = (overdueCount > 0 ? `(${overdueCount}) ` : '') + t('app.title');
  }

  function markRendered() {
    if (S.firstRender) return;
    S.firstRender = true;
    performance.mark('board-rendered');
    document.body.dataset.rendered = '1';
  }

  // ---------- login ----------

  function needLogin() {
    const overlay = $('#login');
    if (!overlay.hidden) return;
    stopStream();
    // Nothing the last token saw stays on the page, nor feeds the next token's (another
    // station's) view: the lists, the resolved feed, who was paged, the scope, the title.
    if (S.view) {
      S.view.destroy();
      S.view = null;
    }
    $('#view').replaceChildren();
    S.resolved = [];
    sessionStorage.removeItem(RESOLVED_KEY);
    S.notified.clear();
    $('#scope').textContent = '';
    overdueCount = 0;
    updateTitle();
    const msg = $('#login-msg');
    msg.hidden = !S.token;
    msg.textContent = S.token ? t('login.wrong') : '';
    S.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $('#logout').hidden = true;
    $('#conn').hidden = true;
    overlay.hidden = false;
    const input = $('#login-token');
    input.value = '';
    input.focus();
  }

  function setupLogin() {
    $('#login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const token = $('#login-token').value.trim();
      if (!token) return;
      S.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      $('#login').hidden = true;
      boot();
    });
    $('#logout').addEventListener('click', () => {
      S.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      needLogin();
    });
  }

  // ---------- the live stream (GET /v1/events, read with fetch: EventSource sends no header) ----------

  function stopStream() {
    S.streamGen++;
    if (S.streamAbort) S.streamAbort.abort();
    S.streamAbort = null;
  }

  /** Splits the event stream into events (the WHATWG server-sent events rules). */
  function sseParser(onEvent) {
    let buf = '';
    let data = [];
    let type = '';
    // The id is the resume point once its event is dispatched, not when its line is read: a
    // stream broken mid-event resumes before it.
    let id = null;
    return (chunk) => {
      buf += chunk;
      for (;;) {
        const i = buf.search(/[\r\n]/);
        if (i < 0) break;
        if (buf[i] === '\r' && i + 1 === buf.length) break; // a \n may follow in the next chunk
        const line = buf.slice(0, i);
        buf = buf.slice(i + (buf[i] === '\r' && buf[i + 1] === '\n' ? 2 : 1));
        if (line === '') {
          if (id !== null) S.lastEventId = id;
          id = null;
          if (data.length || type) onEvent(type || 'message', data.join('\n'));
          data = [];
          type = '';
          continue;
        }
        if (line[0] === ':') continue; // a comment: a keep-alive
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        let value = c < 0 ? '' : line.slice(c + 1);
        if (value[0] === ' ') value = value.slice(1);
        if (field === 'event') type = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id' && !value.includes('\0')) id = value;
      }
    };
  }

  async function runStream() {
    stopStream();
    const gen = S.streamGen;
    let backoff = 1000;
    while (gen === S.streamGen) {
      const ctrl = new AbortController();
      S.streamAbort = ctrl;
      let watchdog = null;
      const opened = Date.now();
      try {
        const headers = { Accept: 'text/event-stream' };
        if (S.token) headers.Authorization = 'Bearer ' + S.token;
        if (S.lastEventId != null) headers['Last-Event-ID'] = S.lastEventId;
        const res = await fetch('v1/events', { headers, cache: 'no-store', signal: ctrl.signal });
        if (res.status === 401) {
          needLogin();
          return;
        }
        if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
        setConn('live');
        resync();
        let lastByte = Date.now();
        // The server sends its hello at once and a comment at least every 15 s: a stream quiet
        // for three of those is dead (a network gone without a reset), so reconnect.
        watchdog = setInterval(() => {
          if (Date.now() - lastByte > 45000) ctrl.abort();
        }, 5000);
        const parse = sseParser(onServerEvent);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          lastByte = Date.now();
          parse(value);
        }
      } catch {
        // dropped, refused or aborted: below
      } finally {
        clearInterval(watchdog);
      }
      if (gen !== S.streamGen) return;
      setConn('down');
      if (Date.now() - opened > 10000) backoff = 1000;
      await sleep(backoff * (0.75 + Math.random() * 0.5));
      backoff = Math.min(backoff * 2, 15000);
    }
  }

  function onServerEvent(type, data) {
    let v = null;
    try {
      v = data ? JSON.parse(data) : null;
    } catch {
      v = null;
    }
    if (type === 'hello' || type === 'resync') {
      resync();
      return;
    }
    if (type === 'escalation' && v) noteEscalation(v);
    if (S.view) S.view.onEvent(type, v);
  }

  function noteEscalation(e) {
    const key = e.alert_id + ':' + e.stage;
    if (e.kind === 'breach' || (e.kind === 'warning' && !S.notified.has(key))) {
      const had = S.notified.get(key);
      if (!had || had.level <= e.level) S.notified.set(key, { level: e.level, notify: e.notify || [] });
    } else if (e.kind === 'resolved') {
      S.notified.delete(key);
      if (!S.resolved.some((r) => r.escalation_id === e.escalation_id)) {
        const keep = ['escalation_id', 'alert_id', 'stage', 'level', 'jurisdiction', 'risk', 'deadline', 'fired_at', 'notify'];
        S.resolved.unshift(Object.fromEntries(keep.map((k) => [k, e[k]])));
        S.resolved.length = Math.min(S.resolved.length, 50);
        try {
          sessionStorage.setItem(RESOLVED_KEY, JSON.stringify(S.resolved));
        } catch {
          // full: the feed still shows this session's
        }
      }
    }
  }

  function resync() {
    if (S.view) S.view.schedule(0);
  }

  // ---------- views ----------

  /** What every view shares: a debounced, never-overlapping refresh and the slow poll. */
  function makeView(name, impl) {
    const v = {
      name,
      lastRefresh: 0,
      timer: null,
      timerAt: 0,
      running: false,
      again: false,
      seq: 0,
      dead: false,
      schedule(ms) {
        if (v.dead) return;
        const at = Date.now() + ms;
        if (v.timer && v.timerAt <= at) return;
        clearTimeout(v.timer);
        v.timerAt = at;
        v.timer = setTimeout(() => {
          v.timer = null;
          v.refresh();
        }, ms);
      },
      async refresh() {
        if (v.dead) return;
        if (v.running) {
          v.again = true;
          return;
        }
        v.running = true;
        v.lastRefresh = Date.now();
        try {
          await impl.load(++v.seq);
        } finally {
          v.running = false;
          if (v.again && !v.dead) {
            v.again = false;
            v.schedule(DEBOUNCE_MS);
          }
        }
      },
      /** After an event: soon, but not more often than EVENT_INTERVAL_MS. */
      soon() {
        v.schedule(Math.max(DEBOUNCE_MS, v.lastRefresh + EVENT_INTERVAL_MS - Date.now()));
      },
      tick(ms) {
        if (!$('#login').hidden) return;
        const poll = S.conn === 'live' ? POLL_LIVE_MS : POLL_DOWN_MS;
        if (Date.now() - v.lastRefresh >= poll) v.schedule(0);
        if (impl.tick) impl.tick(ms);
      },
      onEvent: (type, data) => impl.onEvent && impl.onEvent(type, data),
      update: (route) => impl.update(route),
      rerender: () => impl.rerender(),
      destroy() {
        v.dead = true;
        clearTimeout(v.timer);
      },
    };
    return v;
  }

  function panel(id, cls, title, countEl, body) {
    return h('section', { id, class: 'panel ' + (cls || '') }, h('h2', null, title, countEl), body);
  }

  function table(headers, rows) {
    return h(
      'table',
      null,
      h('thead', null, h('tr', null, headers.map(([text, cls, title]) => h('th', { scope: 'col', class: cls, title }, text)))),
      h('tbody', null, rows),
    );
  }

  function alertLink(id) {
    return h('a', { href: '#/alert/' + encodeURIComponent(id), class: 'id' }, id);
  }

  function riskChip(risk) {
    return h('span', { class: 'chip ' + (RISKS.includes(risk) ? risk : '') }, tr('risk', risk));
  }

  function notifyText(list) {
    return (list || []).map((w) => tr('who', w)).join('、');
  }

  // ----- duty board -----

  function filtersOf(params) {
    return {
      jurisdiction: params.get('jurisdiction') || '',
      risk: params.get('risk') || '',
      stage: params.get('stage') || '',
      window: params.get('window') || DEFAULT_WINDOW,
    };
  }

  function dutyHash(f) {
    const q = new URLSearchParams();
    if (f.jurisdiction) q.set('jurisdiction', f.jurisdiction);
    if (f.risk) q.set('risk', f.risk);
    if (f.stage) q.set('stage', f.stage);
    q.set('window', f.window || DEFAULT_WINDOW);
    return '#/?' + q.toString();
  }

  /** Sets a select to `value`, adding it as an option when the URL named something unknown. */
  function selectValue(sel, value) {
    if (![...sel.options].some((o) => o.value === value)) sel.append(h('option', { value, 'data-extra': '1' }, value));
    sel.value = value;
  }

  function dutyView(route) {
    let f = filtersOf(route.params);
    let data = null; // the last answers
    let goodAt = 0; // when every list last answered
    const el = {};

    function build() {
      const jur = h('input', {
        id: 'f-jurisdiction', type: 'search', value: f.jurisdiction, placeholder: t('f.jurisdiction.ph'),
        autocomplete: 'off', spellcheck: 'false',
      });
      let typing = null;
      jur.addEventListener('input', () => {
        clearTimeout(typing);
        typing = setTimeout(() => go(dutyHash({ ...f, jurisdiction: jur.value.trim() }), true), 500);
      });
      jur.addEventListener('change', () => {
        clearTimeout(typing);
        go(dutyHash({ ...f, jurisdiction: jur.value.trim() }), true);
      });
      const risk = h('select', { id: 'f-risk' }, h('option', { value: '' }, t('f.all')), RISKS.map((r) => h('option', { value: r }, tr('risk', r))));
      const stage = h('select', { id: 'f-stage' }, h('option', { value: '' }, t('f.all')), stages().map((s) => h('option', { value: s }, stageLabel(s))));
      const win = h('select', { id: 'f-window' }, WINDOWS.map((w) => h('option', { value: w }, fmtWindow(w))));
      risk.addEventListener('change', () => go(dutyHash({ ...f, risk: risk.value })));
      stage.addEventListener('change', () => go(dutyHash({ ...f, stage: stage.value })));
      win.addEventListener('change', () => go(dutyHash({ ...f, window: win.value })));
      const reset = h('button', { type: 'button', class: 'btn', id: 'f-reset' }, t('f.reset'));
      reset.addEventListener('click', () => go('#/'));
      Object.assign(el, { jur, risk, stage, win });
      el.summary = h('div', { class: 'summary', id: 'summary' });
      el.overdueCount = h('span', { class: 'count' });
      el.atriskCount = h('span', { class: 'count' });
      el.overdueBody = h('div', { class: 'body' });
      el.atriskBody = h('div', { class: 'body' });
      el.resolvedBody = h('div', { class: 'body' });
      el.atriskTitle = h('span');
      const view = h(
        'div',
        { class: 'duty' },
        h(
          'form',
          { class: 'filters', id: 'filters', onsubmit: (e) => e.preventDefault() },
          h('label', null, t('f.jurisdiction'), jur),
          h('label', null, t('f.risk'), risk),
          h('label', null, t('f.stage'), stage),
          h('label', null, t('f.window'), win),
          reset,
          h('span', { class: 'note' }, t('f.zone', { tz: tz() })),
        ),
        el.summary,
        h(
          'div',
          { class: 'grid' },
          panel('overdue', 'red', t('overdue.title'), el.overdueCount, el.overdueBody),
          h(
            'div',
            { class: 'side' },
            panel('atrisk', 'amber', el.atriskTitle, el.atriskCount, el.atriskBody),
            panel('resolved', 'feed', t('resolved.title'), null, el.resolvedBody),
          ),
        ),
      );
      $('#view').replaceChildren(view);
      setControls();
    }

    function setControls() {
      if (document.activeElement !== el.jur) el.jur.value = f.jurisdiction;
      selectValue(el.risk, f.risk);
      selectValue(el.stage, f.stage);
      selectValue(el.win, f.window);
      el.atriskTitle.textContent = parseDur(f.window) == null ? t('open.title') : t('atrisk.title', { w: fmtWindow(f.window) });
    }

    async function load(seq) {
      const scope = { jurisdiction: f.jurisdiction, risk: f.risk };
      // The overdue panel's own request when a stage is chosen: filtered by the server, not
      // picked from the summary's list, which may end before that stage's entries.
      const [atrisk, overdue, open, st, overdueStage] = await Promise.allSettled([
        apiList('v1/open', { ...scope, stage: f.stage, due_within: parseDur(f.window) == null ? '' : f.window }, LIST_LIMIT),
        apiList('v1/overdue', scope, COUNT_LIMIT),
        apiList('v1/open', scope, COUNT_LIMIT),
        api('v1/stations' + query({ date: today() })),
        f.stage ? apiList('v1/overdue', { ...scope, stage: f.stage }, LIST_LIMIT) : null,
      ]);
      if (seq !== v.seq || v.dead) return;
      const failed = [atrisk, overdue, open, overdueStage, st].find((r) => r.status === 'rejected');
      if (failed && failed.reason.status === 401) return;
      // While the server cannot be reached, the last answers stay (marked stale); an answer
      // refusing the request (4xx) clears its list, since it no longer matches the filters.
      const keep = (r, old) => {
        if (r.status === 'fulfilled') return r.value;
        const code = r.reason && r.reason.status;
        return code >= 400 && code < 500 ? null : old;
      };
      const old = data || {};
      if (!failed) goodAt = now();
      const stale = failed && !(failed.reason.status >= 400 && failed.reason.status < 500) && goodAt;
      banner(failed ? describe(failed.reason) + (stale ? t('err.stale', { t: fmtWhen(goodAt) }) : '') : null);
      data = {
        atrisk: keep(atrisk, old.atrisk),
        overdue: keep(overdue, old.overdue),
        overdueStage: f.stage ? keep(overdueStage, old.overdueStage) : null,
        open: keep(open, old.open),
        stations: keep(st, old.stations),
        at: now(),
      };
      render();
      markRendered();
    }

    function render() {
      renderSummary();
      renderOverdue();
      renderAtRisk();
      renderResolved();
      tick(now());
    }

    function renderSummary() {
      const open = (data && data.open && data.open.items) || [];
      const over = (data && data.overdue && data.overdue.items) || [];
      const win = parseDur(f.window) ?? AT_RISK_MS;
      const prefix = f.jurisdiction;
      const rows = ((data && data.stations && data.stations.rows) || []).filter((r) => !prefix || String(r.jurisdiction).startsWith(prefix));
      const count = (stage) => {
        const mine = (x) => !stage || x.stage === stage;
        const o = open.filter(mine);
        const soon = o.filter((x) => Date.parse(x.deadline) - data.at <= win).length;
        const today = { on_time: 0, late: 0, breached: 0 };
        for (const r of rows.filter(mine)) for (const k of Object.keys(today)) today[k] += Number(r[k]) || 0;
        return { open: o.length, soon, over: over.filter(mine).length, today };
      };
      const more = (d) => (d && d.next_cursor ? '+' : '');
      const card = (stage) => {
        const c = count(stage);
        const num = (n, label, cls, extra) => h('div', { class: 'num ' + (n ? cls : 'zero') }, h('b', null, n == null ? '—' : String(n) + (extra || '')), h('span', null, label));
        return h(
          'div',
          { class: 'card' + (stage && stage === f.stage ? ' selected' : ''), 'data-stage': stage || 'all' },
          h('h3', null, stage ? stageLabel(stage) : t('sum.all'), h('small', null, stage || '')),
          h(
            'div',
            { class: 'nums' },
            num(c.open, t('sum.pending'), '', more(data && data.open)),
            num(c.soon, t('sum.atrisk'), 'amber'),
            num(c.over, t('sum.overdue'), 'red', more(data && data.overdue)),
          ),
          // Today's counts come per station and stage, not per risk: shown without a risk filter.
          data && data.stations && !f.risk
            ? h(
                'div',
                { class: 'today' },
                t('sum.today') + ' ',
                t('sum.ontime') + ' ', h('b', null, String(c.today.on_time)),
                ' · ' + t('sum.late') + ' ', h('b', null, String(c.today.late)),
                ' · ' + t('sum.breached') + ' ', h('b', null, String(c.today.breached)),
              )
            : null,
        );
      };
      el.summary.replaceChildren(card(null), ...stages().map(card));
    }

    function renderOverdue() {
      const d = data && (f.stage ? data.overdueStage : data.overdue);
      const items = ((d && d.items) || []).filter((x) => !f.stage || x.stage === f.stage);
      overdueCount = items.length;
      updateTitle();
      el.overdueCount.textContent = d ? String(items.length) + (d.next_cursor ? '+' : '') : '—';
      if (!items.length) {
        const empty = d && d.next_cursor ? t('empty.partial') : t('empty.overdue');
        el.overdueBody.replaceChildren(h('div', { class: 'empty' }, d ? empty : '—'));
        return;
      }
      const rows = items.slice(0, LIST_LIMIT).map((x) => {
        const seen = S.notified.get(x.alert_id + ':' + x.stage);
        const notify = x.notify || (seen && seen.level === x.level ? seen.notify : null);
        return h(
          'tr',
          { class: 'overdue', 'data-alert': x.alert_id, 'data-stage': x.stage, 'data-level': x.level },
          h('td', { class: 'cd', 'data-deadline': x.deadline, title: `${t('col.deadline')} ${fmtDateTime(Date.parse(x.deadline))} (${tz()})` }),
          h('td', { class: 'notify' }, h('span', { class: 'chip level' }, t('level.n', { n: x.level })), ' ', notify ? notifyText(notify) : ''),
          h('td', null, stageLabel(x.stage)),
          h('td', null, alertLink(x.alert_id)),
          h('td', null, x.jurisdiction),
          h('td', null, riskChip(x.risk)),
          h('td', { class: 'time dl' }, timeEl(x.deadline)),
        );
      });
      fill(
        el.overdueBody,
        table(
          [[t('col.over')], [t('col.notified')], [t('col.stage')], [t('col.alert')], [t('col.jurisdiction')], [t('col.risk')], [t('col.deadline'), 'dl', tz()]],
          rows,
        ),
        items.length > LIST_LIMIT ? h('div', { class: 'more' }, t('more', { n: LIST_LIMIT })) : null,
      );
    }

    function renderAtRisk() {
      const d = data && data.atrisk;
      const items = (d && d.items) || [];
      el.atriskCount.textContent = d ? String(items.length) + (d.next_cursor ? '+' : '') : '—';
      // Re-read the lists just after the soonest deadline, event or not (the processor fires the
      // breach on its clock; `tick` keeps re-reading while the stage is still listed here).
      const soonest = Math.min(...items.map((x) => Date.parse(x.deadline)).filter(Number.isFinite));
      if (Number.isFinite(soonest) && soonest > now()) v.schedule(soonest - now() + 250);
      if (!items.length) {
        const empty = d && d.next_cursor ? t('empty.partial')
          : parseDur(f.window) == null ? t('empty.open') : t('empty.atrisk', { w: fmtWindow(f.window) });
        el.atriskBody.replaceChildren(h('div', { class: 'empty' }, d ? empty : '—'));
        return;
      }
      const within = parseDur(f.window) ?? AT_RISK_MS;
      const rows = items.map((x) =>
        h(
          'tr',
          { class: Date.parse(x.deadline) - now() <= within ? 'atrisk' : 'open', 'data-alert': x.alert_id, 'data-stage': x.stage },
          h('td', { class: 'cd', 'data-deadline': x.deadline, 'data-mode': 'left' }),
          h('td', { class: 'time' }, timeEl(x.deadline)),
          h('td', null, stageLabel(x.stage)),
          h('td', null, alertLink(x.alert_id)),
          h('td', null, x.jurisdiction),
          h('td', null, riskChip(x.risk)),
          h('td', null, x.warned ? h('span', { class: 'chip late' }, t('warned')) : '—'),
        ),
      );
      fill(
        el.atriskBody,
        table([[t('col.left')], [t('col.deadline'), null, tz()], [t('col.stage')], [t('col.alert')], [t('col.jurisdiction')], [t('col.risk')], [t('col.warned')]], rows),
        d.next_cursor ? h('div', { class: 'more' }, t('more', { n: items.length })) : null,
      );
    }

    function renderResolved() {
      const items = S.resolved.filter(
        (r) => (!f.jurisdiction || String(r.jurisdiction).startsWith(f.jurisdiction)) && (!f.risk || r.risk === f.risk) && (!f.stage || r.stage === f.stage),
      );
      if (!items.length) {
        el.resolvedBody.replaceChildren(h('div', { class: 'empty' }, t('resolved.empty')));
        return;
      }
      el.resolvedBody.replaceChildren(
        h(
          'ul',
          null,
          items.map((r) =>
            h(
              'li',
              { 'data-alert': r.alert_id, 'data-stage': r.stage },
              h('span', { class: 't' }, timeEl(r.fired_at)),
              h('span', null, h('span', { class: 'what' }, t('what.resolved')), ' · ', stageLabel(r.stage), ' · ', t('level.n', { n: r.level })),
              h('span', { class: 'sub' }, alertLink(r.alert_id), ' · ', r.jurisdiction, r.notify && r.notify.length ? ' · ' + notifyText(r.notify) : ''),
            ),
          ),
        ),
      );
    }

    function tick(ms) {
      let soonest = Infinity;
      for (const c of el.atriskBody.querySelectorAll('td[data-deadline]')) {
        const left = Date.parse(c.dataset.deadline) - ms;
        soonest = Math.min(soonest, Date.parse(c.dataset.deadline));
        const due = left <= 0;
        c.textContent = due ? `${t('due.now')} +${fmtDur(left)}` : fmtDur(left);
        c.parentElement.classList.toggle('due', due);
      }
      for (const c of el.overdueBody.querySelectorAll('td[data-deadline]')) {
        c.textContent = '+' + fmtDur(ms - Date.parse(c.dataset.deadline));
      }
      // No event is needed for the at-risk → overdue move: once the soonest deadline passed,
      // re-read the lists every 1 s, 2 s, 4 s… (15 s at most) until it moved.
      if (soonest <= ms) {
        const wait = Math.min(15000, Math.max(1000, (ms - soonest) / 2));
        if (Date.now() - v.lastRefresh >= wait) v.schedule(0);
      }
    }

    const v = makeView('duty', {
      load,
      tick,
      update(r) {
        f = filtersOf(r.params);
        setControls();
        if (data) render();
        v.schedule(0);
      },
      rerender() {
        build();
        if (data) render();
      },
      onEvent(type, e) {
        if (type !== 'changed' && type !== 'escalation') return;
        if (type === 'escalation' && e && e.kind === 'resolved' && data) renderResolved();
        // Another station's change does not touch this board's lists.
        if (e && f.jurisdiction && e.jurisdiction && !String(e.jurisdiction).startsWith(f.jurisdiction)) return;
        v.soon();
      },
    });
    build();
    v.schedule(0);
    return v;
  }

  // ----- one alert -----

  function alertView(route) {
    let id = route.id;
    let a = null;
    let missing = false;
    let failedMsg = null;

    async function load(seq) {
      try {
        const got = await api('v1/alerts/' + encodeURIComponent(id));
        if (seq !== v.seq || v.dead) return;
        a = got;
        missing = false;
        failedMsg = null;
      } catch (e) {
        if (seq !== v.seq || v.dead || e.status === 401) return;
        if (e.status === 404) {
          a = null;
          missing = true;
        } else {
          failedMsg = describe(e);
        }
      }
      banner(failedMsg);
      render();
      markRendered();
    }

    function render() {
      const back = h('div', { class: 'crumbs' }, h('a', { href: S.lastDuty }, t('alert.back')));
      if (missing) {
        $('#view').replaceChildren(
          back,
          h('div', { class: 'panel notfound', id: 'notfound' }, t('alert.notfound'), h('span', { class: 'id' }, id), h('span', { class: 'id' }, t('alert.notfound.hint'))),
        );
        return;
      }
      if (!a) {
        $('#view').replaceChildren(back);
        return;
      }
      const kv = (label, value) => h('div', null, h('dt', null, label), h('dd', null, value));
      const stageRows = (a.stage_order || Object.keys(a.stages || {})).map((name) => {
        const s = a.stages[name] || {};
        const open = s.status === 'open';
        const result = s.on_time === true ? h('span', { class: 'chip ok' }, t('ontime')) : s.on_time === false ? h('span', { class: 'chip late' }, t('late')) : '—';
        const levels = (s.levels_fired || []).map((l) => h('span', { class: 'chip level' }, t('level.n', { n: l })));
        return h(
          'tr',
          { 'data-stage': name, 'data-status': s.status || '', class: open ? 'open' : '' },
          h('td', null, stageLabel(name), ' ', h('span', { class: 'notify' }, name)),
          h('td', { class: 'time' }, timeEl(s.deadline, 'full')),
          h('td', open ? { class: 'cd', 'data-deadline': s.deadline } : null, open ? '' : '—'),
          h('td', null, h('span', { class: 'chip ' + (open ? '' : s.status === 'satisfied' ? 'ok' : 'muted') }, tr('stage', s.status))),
          h('td', { class: 'time' }, timeEl(s.satisfied_at, 'full')),
          h('td', null, result),
          h('td', null, s.warned ? t('yes') : '—'),
          h('td', null, levels.length ? levels : '—'),
          h('td', null, s.resolved ? t('yes') : '—'),
        );
      });
      const timeline = (a.timeline || []).map((e) =>
        h(
          'tr',
          { 'data-kind': e.kind },
          h('td', { class: 'time' }, timeEl(e.at, 'full')),
          h('td', null, tr('what', e.kind)),
          h('td', null, e.stage ? stageLabel(e.stage) : '—'),
          h('td', null, e.level != null ? t('level.n', { n: e.level }) : '—'),
          h('td', { class: 'mono' }, e.officer_id || '—'),
          h('td', null, e.outcome ? tr('outcome', e.outcome) : '—'),
          h('td', { class: 'mono' }, e.event_id || '—'),
        ),
      );
      $('#view').replaceChildren(
        back,
        h(
          'div',
          { class: 'head' },
          h('h1', { id: 'alert-id' }, a.alert_id),
          h('span', { class: 'chip ' + (a.status === 'open' ? 'late' : 'ok'), id: 'alert-status' }, tr('status', a.status)),
          riskChip(a.risk),
        ),
        h(
          'div',
          { class: 'stack' },
          h(
            'section',
            { class: 'panel' },
            h('dl', { class: 'kv' },
              kv(t('alert.jurisdiction'), a.jurisdiction),
              kv(t('alert.risk'), tr('risk', a.risk)),
              kv(t('alert.issued'), timeEl(a.issued_at, 'zone')),
              kv(t('alert.closed'), timeEl(a.closed_at, 'zone')),
              kv(t('alert.channel'), a.channel || '—'),
              kv(t('alert.fraud'), tr('fraud', a.fraud_type)),
              kv(t('alert.policy'), h('span', { class: 'mono' }, a.policy_version || '—')),
            ),
          ),
          panel(
            'stages',
            '',
            t('alert.stages'),
            null,
            table(
              [[t('col.stage')], [t('col.deadline') + ` (${tz()})`], [t('col.left')], [t('col.status')], [t('col.satisfied') + ` (${tz()})`], [t('col.result')], [t('col.warned')], [t('col.levels')], [t('col.resolved')]],
              stageRows,
            ),
          ),
          panel(
            'timeline',
            '',
            t('alert.timeline'),
            h('span', { class: 'count' }, String(timeline.length)),
            table([[t('col.time') + ` (${tz()})`], [t('col.what')], [t('col.stage')], [t('col.level')], [t('col.officer')], [t('col.outcome')], [t('col.event')]], timeline),
          ),
        ),
      );
      tick(now());
    }

    function tick(ms) {
      for (const c of document.querySelectorAll('#stages td[data-deadline]')) {
        const left = Date.parse(c.dataset.deadline) - ms;
        const row = c.parentElement;
        c.textContent = left > 0 ? fmtDur(left) : '+' + fmtDur(left);
        const win = parseDur(filtersOf(new URLSearchParams(S.lastDuty.split('?')[1] || '')).window) ?? AT_RISK_MS;
        row.classList.toggle('overdue', left <= 0);
        row.classList.toggle('atrisk', left > 0 && left <= win);
      }
    }

    const v = makeView('alert', {
      load,
      tick,
      update(r) {
        if (r.id !== id) {
          id = r.id;
          a = null;
          missing = false;
          render();
        }
        v.schedule(0);
      },
      rerender: render,
      onEvent(type, e) {
        if ((type === 'changed' || type === 'escalation') && e && e.alert_id === id) v.soon();
      },
    });
    render();
    v.schedule(0);
    return v;
  }

  // ----- stations -----

  function stationsView(route) {
    let date = route.params.get('date') || '';
    let prefix = route.params.get('jurisdiction') || '';
    let d = null;
    const el = {};

    function hashOf(nd, np) {
      return '#/stations' + query({ date: nd, jurisdiction: np });
    }

    function build() {
      const dateIn = h('input', { id: 's-date', type: 'date', value: date || today() });
      dateIn.addEventListener('change', () => go(hashOf(dateIn.value, prefix)));
      const jur = h('input', { id: 's-jurisdiction', type: 'search', value: prefix, placeholder: t('f.jurisdiction.ph'), autocomplete: 'off' });
      let typing = null;
      jur.addEventListener('input', () => {
        clearTimeout(typing);
        typing = setTimeout(() => go(hashOf(date, jur.value.trim()), true), 400);
      });
      const shift = (days) => {
        const day = Date.parse((date || today()) + 'T00:00:00Z');
        if (Number.isFinite(day)) go(hashOf(new Date(day + days * 86400000).toISOString().slice(0, 10), prefix));
      };
      const btn = (text, title, onclick) => h('button', { type: 'button', class: 'btn', title, onclick }, text);
      el.dateIn = dateIn;
      el.jur = jur;
      el.body = h('div', { class: 'body' });
      el.title = h('span');
      $('#view').replaceChildren(
        h(
          'form',
          { class: 'filters', onsubmit: (e) => e.preventDefault() },
          h('label', null, t('st.date'), dateIn),
          btn('‹', t('st.prev'), () => shift(-1)),
          btn(t('st.today'), null, () => go(hashOf('', prefix))),
          btn('›', t('st.next'), () => shift(1)),
          h('label', null, t('f.jurisdiction'), jur),
          h('span', { class: 'note' }, t('st.note', { tz: tz() })),
        ),
        panel('stations', '', el.title, null, el.body),
      );
    }

    async function load(seq) {
      try {
        const got = await api('v1/stations' + query({ date: date || today() }));
        if (seq !== v.seq || v.dead) return;
        d = got;
        banner(null);
      } catch (e) {
        if (seq !== v.seq || v.dead || e.status === 401) return;
        banner(describe(e));
      }
      render();
      markRendered();
    }

    function render() {
      el.title.textContent = `${t('st.title')} · ${(d && d.date) || date || today()} (${(d && d.timezone) || tz()})`;
      if (!d) {
        el.body.replaceChildren();
        return;
      }
      const order = stages();
      const rows = (d.rows || []).filter((r) => !prefix || String(r.jurisdiction).startsWith(prefix));
      if (!rows.length) {
        el.body.replaceChildren(h('div', { class: 'empty' }, t('empty.stations')));
        return;
      }
      // One line per station, a group of columns per stage (the policy's order first).
      const cols = [...new Set([...order, ...rows.map((r) => r.stage)])].filter((st) => rows.some((r) => r.stage === st));
      const KEYS = ['on_time', 'late', 'breached', 'open'];
      const byJ = new Map();
      const add = (j, r) => {
        if (!byJ.has(j)) byJ.set(j, new Map());
        const cell = byJ.get(j).get(r.stage) || { on_time: 0, late: 0, breached: 0, open: null };
        for (const k of KEYS.slice(0, 3)) cell[k] += Number(r[k]) || 0;
        // `open` is given for today only.
        if (r.open != null) cell.open = (cell.open || 0) + Number(r.open);
        byJ.get(j).set(r.stage, cell);
      };
      for (const r of rows) add(r.jurisdiction, r);
      const total = t('st.total');
      const stations = [...byJ.keys()].sort();
      for (const r of rows) add(total, r);
      const line = (j, cls) => {
        const cells = byJ.get(j);
        let onTime = 0;
        let done = 0;
        const tds = [];
        for (const st of cols) {
          const c = cells.get(st);
          for (const k of KEYS) {
            const n = c ? c[k] : null;
            tds.push(
              h(
                'td',
                { class: 'num' + (k === 'on_time' ? ' first' : '') + (n ? (k === 'breached' ? ' red' : k === 'late' ? ' amber' : '') : ' zero') },
                n == null ? '—' : String(n),
              ),
            );
          }
          if (c) {
            onTime += c.on_time;
            done += c.on_time + c.late;
          }
        }
        const rate = done ? onTime / done : null;
        return h(
          'tr',
          { class: cls || '', 'data-jurisdiction': j },
          h('th', { scope: 'row' }, j),
          tds,
          h(
            'td',
            { class: 'first' },
            rate == null
              ? '—'
              : h('span', { class: 'rate' + (rate < 0.9 ? ' low' : '') }, h('span', { class: 'bar' }, barFill(rate)), `${(rate * 100).toFixed(1)}%`),
          ),
        );
      };
      const sub = [t('sum.ontime'), t('sum.late'), t('sum.breached'), t('sum.open')];
      el.body.replaceChildren(
        h(
          'table',
          { class: 'pivot' },
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              h('th', { scope: 'col', rowspan: 2 }, t('col.jurisdiction')),
              cols.map((st) => h('th', { scope: 'colgroup', colspan: KEYS.length, class: 'group' }, stageLabel(st))),
              h('th', { scope: 'col', rowspan: 2, class: 'first' }, t('col.rate')),
            ),
            h('tr', null, cols.map(() => sub.map((x, i) => h('th', { scope: 'col', class: 'num' + (i === 0 ? ' first' : '') }, x)))),
          ),
          h('tbody', null, line(total, 'total'), stations.map((j) => line(j))),
        ),
      );
    }

    function barFill(rate) {
      const i = h('i');
      i.style.width = `${Math.round(rate * 100)}%`;
      return i;
    }

    const v = makeView('stations', {
      load,
      update(r) {
        date = r.params.get('date') || '';
        prefix = r.params.get('jurisdiction') || '';
        if (el.dateIn.value !== (date || today())) el.dateIn.value = date || today();
        if (document.activeElement !== el.jur) el.jur.value = prefix;
        render();
        v.schedule(0);
      },
      rerender() {
        build();
        render();
      },
      onEvent(type) {
        if (type === 'changed' || type === 'escalation') v.soon();
      },
    });
    build();
    v.schedule(0);
    return v;
  }

  // ---------- routing ----------

  function parseHash() {
    const raw = location.hash.replace(/^#/, '') || '/';
    const q = raw.indexOf('?');
    const path = q < 0 ? raw : raw.slice(0, q);
    const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
    if (path.startsWith('/alert/')) {
      let id = path.slice('/alert/'.length);
      try {
        id = decodeURIComponent(id);
      } catch {
        // shown as typed
      }
      return { name: 'alert', id, params };
    }
    if (path === '/stations') return { name: 'stations', params };
    return { name: 'duty', params };
  }

  /** Navigates; `replace` keeps typing in a filter from filling the history. */
  function go(hash, replace) {
    if (hash === location.hash || (hash === '#/' && !location.hash)) return;
    if (replace) {
      history.replaceState(null, '', hash);
      route();
    } else {
      location.hash = hash;
    }
  }

  function route() {
    if (!S.display) return;
    const r = parseHash();
    if (r.name === 'duty') S.lastDuty = location.hash || '#/';
    for (const a of document.querySelectorAll('.tabs a')) a.classList.toggle('active', a.dataset.nav === r.name);
    if (S.view && S.view.name === r.name) {
      S.view.update(r);
      return;
    }
    if (S.view) S.view.destroy();
    banner(null);
    S.view = r.name === 'alert' ? alertView(r) : r.name === 'stations' ? stationsView(r) : dutyView(r);
  }

  // ---------- start ----------

  async function boot() {
    let display;
    try {
      display = await api('v1/display');
    } catch (e) {
      if (e.status === 401) return;
      banner(describe(e));
      setTimeout(boot, 3000);
      return;
    }
    S.display = display;
    partsFmt.clear();
    if (!storedLang()) S.lang = String(display.language || '').startsWith('en') ? 'en' : 'zh';
    banner(null);
    $('#logout').hidden = !S.token;
    $('#conn').hidden = false;
    applyLang();
    if (S.view) {
      S.view.destroy();
      S.view = null;
    }
    route();
    runStream();
  }

  function everySecond() {
    const ms = now();
    tickClock();
    if (S.view) S.view.tick(ms);
    setTimeout(everySecond, 1000 - (Date.now() % 1000) + 5);
  }

  function start() {
    setupLogin();
    applyLang();
    setConn('connecting');
    $('#lang').addEventListener('click', () => setLang(S.lang === 'en' ? 'zh' : 'en'));
    $('#goto').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const id = $('#goto-id').value.trim();
      if (id) go('#/alert/' + encodeURIComponent(id));
    });
    window.addEventListener('hashchange', route);
    // A page left for another keeps no stream open (browsers allow six connections per server);
    // one restored from the back-forward cache reconnects and re-reads its lists.
    window.addEventListener('pagehide', stopStream);
    window.addEventListener('pageshow', (ev) => {
      if (ev.persisted && S.display && $('#login').hidden) runStream();
    });
    everySecond();
    boot();
  }

  start();
})();
