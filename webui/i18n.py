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
    "controller_unreachable": ("Cannot list the models: {error}", "无法获取模型列表：{error}"),
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
        "late: no heartbeat for half the expiry; expired: about to be removed. "
        "Both are listed first.",
        "late（延迟）：超过一半过期时间未收到心跳；expired（过期）：即将移除。二者排在最前。",
    ),
    "late_workers": ("{n} late workers: {addresses}", "{n} 个 worker 心跳延迟：{addresses}"),
    "updated": ("Updated {time}, every {seconds:g} s", "更新于 {time}，每 {seconds:g} 秒刷新"),
    "col_address": ("Address", "地址"),
    "col_models": ("Models", "模型"),
    "col_speed": ("Speed", "速度"),
    "col_queue": ("Queue", "队列"),
    "col_in_flight": ("In flight", "进行中"),
    "col_heartbeat": ("Since heartbeat (s)", "距上次心跳 (秒)"),
    "col_status": ("Status", "状态"),
    "col_images": ("Images", "图片"),
}


def t(key: str, lang: str = "en", **values: object) -> str:
    """The string for `key` in `lang`, formatted with `values`."""
    english, chinese = STRINGS[key]
    text = chinese if lang == "zh" else english
    return text.format(**values) if values else text
