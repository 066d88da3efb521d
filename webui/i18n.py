"""UI strings in English and Chinese; `t(key, lang)` picks one, with English as fallback."""

from __future__ import annotations

LANGUAGES = {"en": "English", "zh": "中文"}

# key: (English, Chinese)
STRINGS: dict[str, tuple[str, str]] = {
    "app_title": ("Vision chat", "多模态对话"),
    "language": ("Language", "语言"),
    "page_chat": ("Chat", "对话"),
    "page_admin": ("Admin", "管理"),
    # chat
    "model": ("Model", "模型"),
    "refresh_models": ("Refresh models", "刷新模型列表"),
    "takes_images": ("This model takes images.", "该模型支持图片输入。"),
    "text_only": ("This model takes text only.", "该模型仅支持文本。"),
    "no_models": ("No model is available yet.", "暂无可用模型。"),
    "no_models_loading": (
        "The embedded worker is loading its model; this page updates by itself.",
        "内置模型正在加载，本页面会自动更新。",
    ),
    "no_models_howto": (
        "To add a model, start a worker that registers with this controller:",
        "如需添加模型，请启动一个向本控制器注册的 worker：",
    ),
    "controller_unreachable": (
        "The controller at {url} is not answering (restarting?). Your conversation is kept; "
        "this page reconnects by itself, and chat resumes once a worker has registered again.",
        "控制器 {url} 无响应（可能正在重启）。对话已保留；本页面会自动重连，"
        "worker 重新注册后即可继续对话。",
    ),
    "waiting_for_controller": ("Waiting for the controller…", "正在等待控制器…"),
    "message_too_long": (
        "Your message is {n:,} characters long; the limit is {limit:,}. Nothing was sent: "
        "shorten it or send it in parts.",
        "消息长度为 {n:,} 个字符，上限为 {limit:,}。未发送：请缩短或分多次发送。",
    ),
    "conversation_too_long": (
        "With this message the conversation would be {n:,} characters long; the limit is "
        "{limit:,}. Nothing was sent: start a new conversation with Clear.",
        "加上这条消息，对话将达到 {n:,} 个字符，上限为 {limit:,}。未发送：请点击“清空对话”"
        "开始新对话。",
    ),
    "system_prompt": ("System prompt", "系统提示词"),
    "system_prompt_default": (
        "You are a helpful assistant.",
        "You are a helpful assistant.",
    ),
    "advanced": ("Advanced options", "高级选项"),
    "temperature": ("Temperature", "温度 (temperature)"),
    "top_p": ("Top P", "Top P"),
    "repetition_penalty": ("Repetition penalty", "重复惩罚"),
    "max_new_tokens": ("Max new tokens", "最大生成长度"),
    "max_input_tiles": ("Max input tiles", "最大图像切片数"),
    "chat_placeholder": ("Ask something", "请输入问题"),
    "chat_placeholder_images": (
        "Ask something, or attach images (at most {n} per conversation)",
        "请输入问题，或上传图片（每个对话最多 {n} 张）",
    ),
    "pick_model_first": ("Pick a model first", "请先选择模型"),
    "stop": ("Stop", "停止"),
    "regenerate": ("Regenerate", "重新生成"),
    "clear": ("Clear", "清空对话"),
    "stopped": ("Stopped.", "已停止。"),
    "too_many_images": (
        "At most {n} images per conversation: {names} not added.",
        "每个对话最多 {n} 张图片：未添加 {names}。",
    ),
    "image_rejected": ("Image not added: {error}", "图片未添加：{error}"),
    "images_ignored": (
        "{model} takes no images; the images of this conversation are not sent.",
        "{model} 不支持图片，本对话中的图片不会发送。",
    ),
    "answer_error": ("The answer failed: {error}", "回答失败：{error}"),
    "boxes_caption": ("Detected: {labels}", "检测结果：{labels}"),
    # admin
    "controller": ("Controller: {url}", "控制器：{url}"),
    "admin_title": ("Workers and traffic", "Worker 与流量"),
    "password": ("Admin password", "管理员密码"),
    "password_wrong": ("Wrong password.", "密码错误。"),
    "workers": ("Workers", "Worker 数"),
    "models": ("Models", "模型数"),
    "in_flight": ("In flight", "进行中"),
    "total_queue": ("Total queue", "总队列"),
    "requests_per_min": ("Requests / min", "每分钟请求"),
    "errors": ("Errors", "错误"),
    "dispatch_method": ("Dispatch method", "调度方式"),
    "apply": ("Apply", "应用"),
    "refresh_all": ("Refresh all workers", "刷新所有 worker"),
    "refreshed": ("Asked {n} workers; removed: {removed}", "已询问 {n} 个 worker；移除：{removed}"),
    "remove_worker": ("Remove worker", "移除 worker"),
    "remove": ("Remove", "移除"),
    "removed": ("Removed {address}.", "已移除 {address}。"),
    "not_found": ("{address} was not registered.", "{address} 未注册。"),
    "register_worker": ("Register a worker by address", "按地址注册 worker"),
    "register": ("Register", "注册"),
    "registered": ("Registered {address}.", "已注册 {address}。"),
    "dispatch_set": ("Dispatch method: {method}.", "调度方式：{method}。"),
    "no_workers": ("No worker is registered.", "没有已注册的 worker。"),
    "queue_chart": ("Queue length per worker (last 15 min)", "各 worker 队列长度（最近 15 分钟）"),
    "rate_chart": ("Requests per minute (last 15 min)", "每分钟请求数（最近 15 分钟）"),
    "no_stats": ("No traffic recorded yet.", "暂无流量记录。"),
    "late_legend": (
        "late: no heartbeat for half the expiry; expired: about to be removed. Breaker open: out "
        "of dispatch for a cool-down after failures in a row; half-open: the next request "
        "probes it. Workers in trouble are listed first.",
        "late（延迟）：超过一半过期时间未收到心跳；expired（过期）：即将移除。"
        "熔断器 open：连续失败后暂停调度一段时间；half-open：下一个请求用于探测。"
        "有问题的 worker 排在最前。",
    ),
    "late_workers": ("{n} late workers: {addresses}", "{n} 个 worker 心跳延迟：{addresses}"),
    "updated": ("Updated {time}, every {seconds:g} s", "更新于 {time}，每 {seconds:g} 秒刷新"),
    "col_address": ("Address", "地址"),
    "col_models": ("Models", "模型"),
    "col_speed": ("Speed", "速度"),
    "col_queue": ("Queue", "队列"),
    "col_in_flight": ("In flight", "进行中"),
    "col_heartbeat": ("Last beat (s)", "心跳 (秒前)"),
    "col_heartbeat_help": ("Seconds since the last heartbeat", "距上次心跳的秒数"),
    "col_status": ("Status", "状态"),
    "col_images": ("Images", "图片"),
    "col_breaker": ("Breaker", "熔断器"),
    "col_failures": ("Failures", "失败"),
    "col_failures_help": (
        "Failures in a row; a success resets it", "连续失败次数；成功一次即清零"
    ),
    "open_breakers": (
        "{n} workers out of dispatch (circuit breaker open after repeated failures): "
        "{addresses}",
        "{n} 个 worker 因连续失败被熔断，暂停调度：{addresses}",
    ),
    "registry_memory": (
        "Registry: in memory (this controller only)",
        "注册表：内存（仅本控制器）",
    ),
    "registry_redis": (
        "Registry: Redis, shared by every controller replica",
        "注册表：Redis，所有控制器副本共享",
    ),
    "registry_synced": ("(synced {seconds:.1f} s ago)", "（{seconds:.1f} 秒前同步）"),
    "registry_degraded": (
        "The shared registry (Redis) is unreachable: {error}. The controller keeps serving "
        "from its last known view, which this page shows; workers that joined or left through "
        "other replicas meanwhile are not seen. It catches up by itself when Redis is back.",
        "共享注册表（Redis）无法访问：{error}。控制器继续使用最后已知的状态提供服务，本页显示的"
        "即为该状态；其间通过其他副本加入或离开的 worker 不可见。Redis 恢复后会自动同步。",
    ),
    "registration_open": (
        "Worker registration is open: anyone who can reach this controller can register a "
        "worker under any model name, and users' prompts would then be sent to it. Set "
        "CONTROLLER_WORKER_TOKEN (for `streamlit run app.py` or `python -m controller`) and "
        "start workers with WORKER_CONTROLLER_TOKEN (or --controller-token); the app's own "
        "workers get the token by themselves.",
        "Worker 注册未加保护：任何能访问本控制器的人都可以用任意模型名注册 worker，"
        "用户的提问随后会被发送给它。请为控制器设置 CONTROLLER_WORKER_TOKEN（`streamlit run "
        "app.py` 或 `python -m controller`），并用 WORKER_CONTROLLER_TOKEN（或 "
        "--controller-token）启动 worker；本应用自带的 worker 会自动获得该令牌。",
    ),
}


def t(key: str, lang: str = "en", **values: object) -> str:
    """The string for `key` in `lang`, formatted with `values`."""
    english, chinese = STRINGS[key]
    text = chinese if lang == "zh" else english
    return text.format(**values) if values else text
